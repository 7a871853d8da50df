#pragma once
// Replay order for timeline events found by different passes.
//
// A pass names a hit by arrivals counted from its stretch's base
// (`L9049@0xffffffff8103d8b2#1`): exact, but two names of different passes
// in one stretch say nothing about which came first. Their step counts
// would (TimeTraveler::position()), at the price of single-stepping the
// stretch up to each event, user code included. Instead, one more
// debug-register run from the stretch's base, armed with every address
// the stretch's names count arrivals at, meets the events in the order the
// vCPU reached them: each arrival advances every name whose current link
// counts that address, and a name is reached when its last link is. Only
// stretches with events of more than one pass are run again. Where that
// cannot work (a name counted from a position inside the stretch, a run
// that does not reach every name), the stretch falls back to exact
// positions, one seek and one position() per event.
#include <cstddef>
#include <functional>
#include <vector>

#include "timeline/timeline.h"
#include "travel/time_traveler.h"

namespace analyzer {

// An event with what the ordering needs to know about how it was found.
struct PassEvent {
  TimelineEvent event;
  size_t pass = 0;
  uint64_t address = 0;  // the probe's code address (rip at `event.position`)
};

// Sorts `events` by stretch ((landmark, async stop) of the position's base)
// and, within a stretch holding events of more than one pass, in the order
// the replay reaches them; events of one pass keep their order otherwise.
// Moves `traveler`. Throws what TimeTraveler's seek and continue throw.
ReplayOrderStats put_in_replay_order(TimeTraveler& traveler, std::vector<PassEvent>& events);

}  // namespace analyzer
