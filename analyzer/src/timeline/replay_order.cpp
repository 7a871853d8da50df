// Events of several passes in one stretch, put in the order the replay
// reaches them (see replay_order.h for why an arrival-counting run).
#include "timeline/replay_order.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>
#include <utility>

#include "machine/vcpu_state.h"

namespace analyzer {
namespace {

// (landmark, async stop): the part of the recording between two logged
// positions, which names by arrivals count from.
using Stretch = std::pair<uint64_t, uint64_t>;

Stretch stretch_of(const librr::Position& position) {
  return {position.landmark, position.async_seq};
}

// How far the arrival run has matched one event's name.
struct NameCursor {
  const PassEvent* event = nullptr;
  size_t link = 0;                   // the link whose arrivals are being counted
  uint64_t counted = 0;              // arrivals at its pc since the previous link's state
  std::optional<size_t> reached_at;  // the run's stop where the whole name was matched
};

// The vCPU arrived at `rip` (named `here` by the run) as the run's stop
// number `stop`. A name's next link counts states strictly after the
// previous link's, so one arrival advances a name by at most one link.
void advance(NameCursor& cursor, uint64_t rip, const PositionName& here, size_t stop) {
  if (cursor.reached_at) return;
  const PositionName& name = cursor.event->event.position;
  if (name.is_exact()) {
    if (here.is_exact() && here.base == name.base) cursor.reached_at = stop;
    return;
  }
  const PcArrival& link = name.arrivals[cursor.link];
  if (link.pc != rip || ++cursor.counted < link.ordinal) return;
  cursor.counted = 0;
  if (++cursor.link == name.arrivals.size()) cursor.reached_at = stop;
}

// One debug-register run from the stretch's base, stopping at every address
// any of `group`'s names counts. Returns the stop at which each event was
// reached (comparable within the stretch), or nullopt where this cannot
// tell: a name counted from a position inside the stretch (a range's start,
// a search made exact half-way), or a run that left the stretch first.
std::optional<std::vector<size_t>> stops_reaching(TimeTraveler& traveler,
                                                  const std::vector<PassEvent*>& group,
                                                  const Stretch& stretch) {
  const librr::Position base{stretch.first, stretch.second, 0};
  Breakpoints armed;
  std::vector<NameCursor> cursors;
  for (const PassEvent* e : group) {
    const PositionName& name = e->event.position;
    if (!name.is_exact() && name.base != base) return std::nullopt;
    for (const PcArrival& link : name.arrivals) armed.code.insert(link.pc);
    armed.code.insert(e->address);
    cursors.push_back(NameCursor{e, 0, 0, std::nullopt});
  }
  traveler.seek(base);
  size_t unreached = cursors.size();
  const auto arrive = [&](uint64_t rip, size_t stop) {
    const PositionName here = traveler.here();
    for (NameCursor& cursor : cursors) {
      const bool was_reached = cursor.reached_at.has_value();
      advance(cursor, rip, here, stop);
      if (!was_reached && cursor.reached_at) --unreached;
    }
  };
  // A name's first link counts states at or after its base: the base too
  // (continue_forward only looks after the current position).
  if (const uint64_t rip = traveler.vcpu().regs.rip; armed.code.count(rip)) arrive(rip, 0);
  const librr::Position next_landmark{stretch.first + 1, 0, 0};
  for (size_t stop = 1; unreached > 0; ++stop) {
    const StopReason reason = traveler.continue_forward(armed, next_landmark);
    if (reason.kind != StopReason::Kind::kBreakpoint) return std::nullopt;
    if (stretch_of(traveler.here().base) != stretch) return std::nullopt;
    arrive(reason.address, stop);
  }
  std::vector<size_t> stops;
  for (const NameCursor& cursor : cursors) stops.push_back(*cursor.reached_at);
  return stops;
}

// The exact position of each event: a seek by name and single steps from
// the stretch's base for each one named by arrivals.
std::vector<librr::Position> exact_positions(TimeTraveler& traveler,
                                             const std::vector<PassEvent*>& group) {
  std::vector<librr::Position> exact;
  for (const PassEvent* e : group) {
    if (e->event.position.is_exact()) {
      exact.push_back(e->event.position.base);
      continue;
    }
    traveler.seek_named(e->event.position);
    exact.push_back(traveler.position());
  }
  return exact;
}

// Sorts `group` (one stretch, in pass order) by `keys`, stably.
template <class Key>
void sort_by(std::vector<PassEvent*>& group, const std::vector<Key>& keys) {
  std::vector<size_t> order(group.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<PassEvent*> sorted;
  for (size_t i : order) sorted.push_back(group[i]);
  group = std::move(sorted);
}

bool from_several_passes(const std::vector<PassEvent*>& group) {
  return std::any_of(group.begin(), group.end(),
                     [&](const PassEvent* e) { return e->pass != group.front()->pass; });
}

}  // namespace

ReplayOrderStats put_in_replay_order(TimeTraveler& traveler, std::vector<PassEvent>& events) {
  const auto started = std::chrono::steady_clock::now();
  // Stretch by stretch, in increasing order, so that the runs mostly replay
  // forward from one to the next.
  std::vector<PassEvent*> by_stretch;
  for (PassEvent& e : events) by_stretch.push_back(&e);
  std::stable_sort(by_stretch.begin(), by_stretch.end(),
                   [](const PassEvent* a, const PassEvent* b) {
                     return stretch_of(a->event.position.base) < stretch_of(b->event.position.base);
                   });

  ReplayOrderStats stats;
  std::vector<PassEvent*> ordered;
  for (auto first = by_stretch.begin(); first != by_stretch.end();) {
    const Stretch stretch = stretch_of((*first)->event.position.base);
    const auto last = std::find_if(first, by_stretch.end(), [&](const PassEvent* e) {
      return stretch_of(e->event.position.base) != stretch;
    });
    std::vector<PassEvent*> group(first, last);
    first = last;
    if (from_several_passes(group)) {
      ++stats.stretches;
      stats.events += group.size();
      if (const auto stops = stops_reaching(traveler, group, stretch)) {
        ++stats.arrival_runs;
        sort_by(group, *stops);
      } else {
        ++stats.exact_fallbacks;
        sort_by(group, exact_positions(traveler, group));
      }
    }
    ordered.insert(ordered.end(), group.begin(), group.end());
  }

  std::vector<PassEvent> sorted;
  sorted.reserve(events.size());
  for (PassEvent* e : ordered) sorted.push_back(std::move(*e));
  events = std::move(sorted);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return stats;
}

}  // namespace analyzer
