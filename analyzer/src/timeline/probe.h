#pragma once
// A probe: one kernel function the timeline puts a code breakpoint on, and
// how to turn a stop there into a TimelineEvent. The replay loop
// (timeline.cpp) calls on_entry with the machine stopped at the function's
// first instruction; if the probe asks for the result, it puts a breakpoint
// on the return address ([rsp] at entry) and calls on_return there, with
// rsp one slot above the entry's (so a recursive or interleaved call on
// another kernel stack is not mistaken for this one).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "profile/profile.h"
#include "timeline/timeline.h"
#include "travel/time_traveler.h"

namespace analyzer {

struct EntryDecision {
  std::optional<TimelineEvent> event;  // nullopt: this stop is not an event (an interrupt...)
  bool await_return = false;
  std::array<uint64_t, 2> saved{};  // probe state handed back to on_return
};

class Probe {
 public:
  // `awaits_return`: on_entry may ask for the return (a breakpoint on it).
  Probe(std::string function, uint64_t address, std::string kind, bool awaits_return)
      : function_(std::move(function)),
        address_(address),
        kind_(std::move(kind)),
        awaits_return_(awaits_return) {}
  virtual ~Probe() = default;

  const std::string& function() const { return function_; }
  uint64_t address() const { return address_; }
  const std::string& kind() const { return kind_; }
  bool awaits_return() const { return awaits_return_; }

  // The machine is at the function's first instruction (arguments in rdi,
  // rsi, rdx, rcx, r8, r9). Fills everything but position and result.
  virtual EntryDecision on_entry(const TimeTraveler& traveler) const = 0;
  // The machine is at the return address; by default the result is rax.
  virtual void on_return(const TimeTraveler& traveler, const std::array<uint64_t, 2>& saved,
                         TimelineEvent& event) const;

 private:
  std::string function_;
  uint64_t address_;
  std::string kind_;
  bool awaits_return_;
};

using Probes = std::vector<std::unique_ptr<Probe>>;

// Probes of the Linux 6.1 model for `kinds` (empty = all), from the profile's
// symbols. Throws librr::Error when a requested kind has none of its functions
// in the profile.
Probes linux_probes(const Profile& profile, const std::set<std::string>& kinds);
std::vector<std::string> linux_timeline_kinds();

// build_timeline (timeline.h) with `probes` instead of those of the
// profile's OS, in passes planned the same way from their order: for a
// probe set of one's own (options.kinds is not looked at).
std::vector<TimelineEvent> build_timeline(TimeTraveler& traveler, const Profile& profile,
                                          const Probes& probes, const TimelineOptions& options);

// The test-guest kernel: every ud2 system call, through trap_dispatch.
Probes test_guest_probes(const Profile& profile, const std::set<std::string>& kinds);
std::vector<std::string> test_guest_timeline_kinds();

}  // namespace analyzer
