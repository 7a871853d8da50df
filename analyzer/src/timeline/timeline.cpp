// The replay loop of the timeline: probes grouped into passes that fit the
// replay engine's hardware breakpoints, one replay of the range per pass,
// entry and return breakpoints matched by kernel stack pointer.
#include "timeline/timeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "machine/vcpu_state.h"
#include "os/guest_session.h"
#include "os/kernel_memory.h"
#include "os/os_model.h"
#include "timeline/probe.h"
#include "timeline/replay_order.h"

namespace analyzer {
namespace {

// The replay engine stops on at most this many code addresses at full speed
// (x86 debug registers DR0-DR3) and needs one of them for the stretches that
// end at a logged asynchronous stop (travel/breakpoint_search.cpp); with
// more it single-steps such a stretch. So a pass arms at most 3 addresses:
// function entries, plus one return address if any of its functions wants
// results (the newest pending call's: older ones get no result).
constexpr size_t kHardwareBreakpoints = 4;
constexpr size_t kAddressesPerPass = kHardwareBreakpoints - 1;

struct PendingReturn {
  size_t event_index = 0;
  const Probe* probe = nullptr;
  uint64_t return_address = 0;
  uint64_t entry_stack_pointer = 0;
  std::array<uint64_t, 2> saved{};
};

bool is_linux(const Profile& profile) { return profile.os() == "linux"; }

Probes probes_for(const Profile& profile, const std::set<std::string>& kinds) {
  const std::vector<std::string> known = timeline_kinds(profile);
  for (const std::string& kind : kinds)
    if (std::find(known.begin(), known.end(), kind) == known.end())
      throw librr::Error(fmt::format("unknown event kind \"{}\" for this guest (known: {})", kind,
                                     fmt::join(known, ", ")));
  return is_linux(profile) ? linux_probes(profile, kinds) : test_guest_probes(profile, kinds);
}

// Probes in order, as many per pass as fit kAddressesPerPass with a slot for
// a return address in passes whose functions want results, and at most
// `functions_per_pass` (0: no limit but that).
std::vector<std::vector<const Probe*>> plan_passes(const Probes& probes,
                                                   size_t functions_per_pass) {
  std::vector<std::vector<const Probe*>> passes;
  const auto addresses = [](const std::vector<const Probe*>& pass) {
    const bool returns = std::any_of(pass.begin(), pass.end(),
                                     [](const Probe* probe) { return probe->awaits_return(); });
    return pass.size() + (returns ? 1 : 0);
  };
  for (const auto& probe : probes) {
    if (!passes.empty() && (functions_per_pass == 0 || passes.back().size() < functions_per_pass)) {
      passes.back().push_back(probe.get());
      if (addresses(passes.back()) <= kAddressesPerPass) continue;
      passes.back().pop_back();
    }
    passes.push_back({probe.get()});
  }
  return passes;
}

double range_fraction(const librr::Position& at, const librr::Position& from,
                      const librr::Position& to) {
  if (to.landmark <= from.landmark) return 1.0;
  const double done = static_cast<double>(std::min(at.landmark, to.landmark) - from.landmark);
  return std::clamp(done / static_cast<double>(to.landmark - from.landmark), 0.0, 1.0);
}

class PassRunner {
 public:
  PassRunner(TimeTraveler& traveler, const std::vector<const Probe*>& probes, size_t pass,
             std::vector<PassEvent>& events)
      : traveler_(traveler), pass_(pass), events_(events) {
    for (const Probe* probe : probes) entries_[probe->address()] = probe;
  }

  // Replays [from, to]; `progress` gets the fraction of this pass.
  void run(const librr::Position& from, const librr::Position& to,
           const std::function<void(double)>& progress) {
    traveler_.seek(from);
    // continue_forward looks after the current position: a call entered
    // exactly at `from` is the first event.
    if (auto entry = entries_.find(traveler_.vcpu().regs.rip); entry != entries_.end())
      on_entry(*entry->second, from);
    // The search goes on to the first landmark after `to`, so `to`'s whole
    // stretch is searched; later hits are dropped below.
    const librr::Position limit{to.landmark + 1, 0, 0};
    for (;;) {
      const StopReason stop = traveler_.continue_forward(breakpoints(), limit);
      if (stop.kind != StopReason::Kind::kBreakpoint) break;
      const PositionName at = traveler_.here();
      if (after(at, to)) break;
      if (progress) progress(range_fraction(at.base, from, to));
      on_return(stop.address, at);
      if (auto entry = entries_.find(stop.address); entry != entries_.end())
        on_entry(*entry->second, at);
    }
  }

 private:
  Breakpoints breakpoints() const {
    Breakpoints set;
    for (const auto& [address, probe] : entries_) set.code.insert(address);
    // The newest pending returns first, while the addresses last.
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      if (set.code.size() >= kAddressesPerPass) break;
      set.code.insert(it->return_address);
    }
    return set;
  }

  // Whether the hit `at` lies after the range's end `to`. A hit named by
  // arrivals inside `to`'s own stretch needs its exact position for that.
  bool after(const PositionName& at, const librr::Position& to) const {
    if (at.is_exact()) return at.base > to;
    const librr::Position stretch{at.base.landmark, at.base.async_seq, 0};
    if (stretch != librr::Position{to.landmark, to.async_seq, 0}) return stretch > to;
    return traveler_.position() > to;
  }

  void on_entry(const Probe& probe, const PositionName& at) {
    EntryDecision decision;
    try {
      decision = probe.on_entry(traveler_);
    } catch (const GuestReadError& e) {
      // One unreadable argument must not cost the whole timeline.
      decision.event.emplace();
      decision.event->kind = probe.kind();
      decision.event->function = probe.function();
      decision.event->error = e.what();
    }
    if (!decision.event) return;
    decision.event->position = at;
    events_.push_back({std::move(*decision.event), pass_, probe.address()});
    if (!decision.await_return) return;
    const auto& regs = traveler_.vcpu().regs;
    const auto return_address = traveler_.address_space().read_obj<uint64_t>(regs.rsp);
    if (!return_address) return;
    // A call still pending on the same stack slot never returned (its task
    // died or was switched away for good): forget it.
    std::erase_if(pending_,
                  [&](const PendingReturn& p) { return p.entry_stack_pointer == regs.rsp; });
    pending_.push_back({events_.size() - 1, &probe, *return_address, regs.rsp, decision.saved});
    // Only the newest pending returns fit in the debug registers; older ones
    // would stop nowhere, so their results stay unknown.
    const size_t keep = kAddressesPerPass - entries_.size();
    std::set<uint64_t> addresses;
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      addresses.insert(it->return_address);
      if (addresses.size() > keep) {
        pending_.erase(pending_.begin(), it.base());
        break;
      }
    }
  }

  void on_return(uint64_t address, const PositionName& at) {
    const uint64_t stack_pointer = traveler_.vcpu().regs.rsp;
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->return_address != address || it->entry_stack_pointer + 8 != stack_pointer) continue;
      TimelineEvent& event = events_[it->event_index].event;
      try {
        it->probe->on_return(traveler_, it->saved, event);
      } catch (const GuestReadError& e) {
        event.error = e.what();
      }
      if (event.result) event.result_position = at;
      pending_.erase(it);
      return;
    }
  }

  TimeTraveler& traveler_;
  size_t pass_;
  std::vector<PassEvent>& events_;
  std::map<uint64_t, const Probe*> entries_;
  std::vector<PendingReturn> pending_;
};

}  // namespace

void Probe::on_return(const TimeTraveler& traveler, const std::array<uint64_t, 2>&,
                      TimelineEvent& event) const {
  event.result = static_cast<int64_t>(traveler.vcpu().regs.rax);
}

std::vector<std::string> timeline_kinds(const Profile& profile) {
  return is_linux(profile) ? linux_timeline_kinds() : test_guest_timeline_kinds();
}

std::vector<TimelineEvent> build_timeline(TimeTraveler& traveler, const Profile& profile,
                                          const TimelineOptions& options) {
  return build_timeline(traveler, profile, probes_for(profile, options.kinds), options);
}

std::vector<TimelineEvent> build_timeline(TimeTraveler& traveler, const Profile& profile,
                                          const Probes& probes, const TimelineOptions& options) {
  const librr::Position from = options.from.value_or(librr::Position{});
  const librr::Position to = options.to.value_or(traveler.end());
  if (to < from)
    throw librr::Error(
        fmt::format("the range ends ({}) before it starts ({})", to.to_string(), from.to_string()));
  if (to > traveler.end())
    throw PositionPastEnd(fmt::format("{} lies past the end of the recording, which ends at {}",
                                      to.to_string(), traveler.end().to_string()));
  // Refuse a profile of another kernel before replaying anything.
  traveler.seek(from);
  make_os_model(profile, machine_view(traveler));

  const auto passes = plan_passes(probes, options.functions_per_pass);
  std::vector<PassEvent> found;
  for (size_t i = 0; i < passes.size(); ++i) {
    if (options.on_pass) {
      std::vector<std::string> names;
      for (const Probe* probe : passes[i]) names.push_back(probe->function());
      options.on_pass(fmt::format("pass {}/{}: {}", i + 1, passes.size(), fmt::join(names, ", ")));
    }
    std::function<void(double)> progress;
    if (options.progress)
      progress = [&, i](double fraction) {
        options.progress((static_cast<double>(i) + fraction) / static_cast<double>(passes.size()));
      };
    PassRunner(traveler, passes[i], i, found).run(from, to, progress);
  }
  const ReplayOrderStats order = put_in_replay_order(traveler, found);
  if (options.on_replay_order) options.on_replay_order(order);
  std::vector<TimelineEvent> events;
  events.reserve(found.size());
  for (PassEvent& e : found) events.push_back(std::move(e.event));
  if (options.progress) options.progress(1.0);
  return events;
}

}  // namespace analyzer
