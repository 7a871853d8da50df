// The debugger's execution control on top of seek(): forward by single
// steps with breakpoint and watchpoint checks, backward by replaying a
// stretch before the current position and remembering the last stop in it.
#include <fmt/format.h>

#include <cstring>

#include "librr/log.h"
#include "travel/time_traveler.h"
#include "travel/time_traveler_impl.h"

namespace analyzer {
namespace {

// Stepping more than this many instructions to find one reverse stop means
// crossing a long native stretch; better to say so than to appear hung.
constexpr uint64_t kMaxReverseScanSteps = 2'000'000;

struct WatchedBytes {
  std::vector<std::vector<uint8_t>> ranges;
  bool operator==(const WatchedBytes&) const = default;
};

WatchedBytes read_watched(const TimeTraveler& traveler, const Breakpoints& breakpoints) {
  WatchedBytes bytes;
  if (breakpoints.writes.empty()) return bytes;
  const AddressSpace space = traveler.address_space();
  for (const Watchpoint& watch : breakpoints.writes) {
    std::vector<uint8_t> data(watch.length);
    data.resize(space.read(watch.address, data));
    bytes.ranges.push_back(std::move(data));
  }
  return bytes;
}

// The first watched range whose bytes differ, as a stop; nullopt if none.
std::optional<StopReason> changed_watch(const Breakpoints& breakpoints, const WatchedBytes& before,
                                        const WatchedBytes& after) {
  for (size_t i = 0; i < breakpoints.writes.size(); ++i)
    if (before.ranges[i] != after.ranges[i])
      return StopReason{StopReason::Kind::kWatchpoint, breakpoints.writes[i].address};
  return std::nullopt;
}

bool has_breakpoints(const Breakpoints& breakpoints) {
  return !breakpoints.code.empty() || !breakpoints.writes.empty();
}

}  // namespace

StopReason TimeTraveler::step_instruction() {
  if (impl_->machine_past_position) seek(position());
  if (position() == end()) return {StopReason::Kind::kEnd, 0};
  if (!impl_->step_once()) return {StopReason::Kind::kEnd, 0};
  return {StopReason::Kind::kStep, 0};
}

StopReason TimeTraveler::continue_forward(const Breakpoints& breakpoints,
                                          const std::optional<librr::Position>& limit) {
  Impl& s = *impl_;
  if (!breakpoints.code.empty() && breakpoints.writes.empty()) {
    // From a hit the search stopped at, the same search goes on (a hit
    // costs no exact position); otherwise a new one from here.
    if (s.hit_name && s.search.in_stretch) {
      if (s.search.code != breakpoints.code) s.rearm_search(breakpoints.code);
    } else {
      if (s.machine_past_position) seek(position());
      s.search = CodeSearch::over(breakpoints.code);
    }
    s.search.limit = limit;
    CodeHit hit;
    switch (s.search_code(hit)) {
      case Impl::SearchStop::kEnd:
      case Impl::SearchStop::kLimit:
        return {StopReason::Kind::kEnd, 0};
      case Impl::SearchStop::kInterrupted:
        return {StopReason::Kind::kInterrupted, 0};
      case Impl::SearchStop::kHit:
        return {StopReason::Kind::kBreakpoint, hit.pc};
    }
  }
  if (s.machine_past_position) seek(position());
  if (!has_breakpoints(breakpoints)) {
    while (s.advance()) {
      if (limit && s.position >= *limit) return {StopReason::Kind::kEnd, 0};
      if (s.interrupt_requested()) return {StopReason::Kind::kInterrupted, 0};
    }
    return {StopReason::Kind::kEnd, 0};
  }
  WatchedBytes watched = read_watched(*this, breakpoints);
  for (;;) {
    if (!s.step_once()) return {StopReason::Kind::kEnd, 0};
    if (limit && s.position >= *limit) return {StopReason::Kind::kEnd, 0};
    if (s.interrupt_requested()) return {StopReason::Kind::kInterrupted, 0};
    WatchedBytes now = read_watched(*this, breakpoints);
    if (auto stop = changed_watch(breakpoints, watched, now)) return *stop;
    watched = std::move(now);
    const uint64_t rip = s.read_rip();
    if (breakpoints.code.count(rip)) return {StopReason::Kind::kBreakpoint, rip};
  }
}

// The last position strictly before `current` at which `is_stop` holds,
// replaying from `from` by single steps. `is_stop` sees the traveler after
// each step (and at `from` itself).
// `interrupted()` true stops the scan there (a kInterrupted stop).
template <class IsStop, class Interrupted>
static std::optional<std::pair<librr::Position, StopReason>> last_stop_between(
    TimeTraveler& traveler, const librr::Position& from, const librr::Position& current,
    IsStop&& is_stop, Interrupted&& interrupted) {
  traveler.seek(from);
  std::optional<std::pair<librr::Position, StopReason>> last;
  uint64_t steps = 0;
  while (traveler.position() < current) {
    if (auto stop = is_stop()) last.emplace(traveler.position(), *stop);
    if (interrupted()) {
      last.emplace(traveler.position(), StopReason{StopReason::Kind::kInterrupted, 0});
      break;
    }
    if (++steps > kMaxReverseScanSteps)
      throw librr::Error(fmt::format(
          "gave up stepping backward from {}: more than {} instructions since {} (a long "
          "native stretch; seek to an earlier position instead)",
          current.to_string(), kMaxReverseScanSteps, from.to_string()));
    if (traveler.step_instruction().kind == StopReason::Kind::kEnd) break;
  }
  return last;
}

// The (L, a) position just before `position` (steps == 0): the previous
// async stop of the same landmark, or the last async stop of the landmark
// before, found in the log.
static librr::Position previous_base(const librr::Position& position,
                                     const std::filesystem::path& log_path,
                                     const std::optional<librr::Key>& key) {
  if (position.async_seq > 0) return {position.landmark, position.async_seq - 1, 0};
  librr::Position previous{position.landmark - 1, 0, 0};
  librr::LogReaderOptions options;
  options.key = key;
  librr::LogReader reader(log_path, options);
  if (!reader.seek_to_position(previous)) return previous;
  while (auto event = reader.next()) {
    const librr::Position at = librr::event_position(*event);
    if (at.landmark != previous.landmark) break;
    if (std::holds_alternative<librr::AsyncPosition>(*event)) previous.async_seq = at.async_seq;
  }
  return previous;
}

StopReason TimeTraveler::reverse_step_instruction() {
  const librr::Position current = position();
  if (current == librr::Position{}) return {StopReason::Kind::kStart, 0};
  if (current.steps > 0) {
    seek({current.landmark, current.async_seq, current.steps - 1});
    return {StopReason::Kind::kStep, 0};
  }
  const librr::Position from =
      previous_base(current, impl_->replay->recording().log_path(), impl_->options.key);
  auto last = last_stop_between(
      *this, from, current,
      [] {
        return std::optional<StopReason>(StopReason{StopReason::Kind::kStep, 0});
      },
      [] { return false; });
  seek(last ? last->first : from);
  return {StopReason::Kind::kStep, 0};
}

std::optional<CodeHit> TimeTraveler::Impl::last_code_hit_between(TimeTraveler& traveler,
                                                                 const std::set<uint64_t>& code,
                                                                 const librr::Position& from,
                                                                 const librr::Position& current,
                                                                 bool& interrupted) {
  traveler.seek(from);
  search = CodeSearch::over(code, librr::Position{current.landmark, current.async_seq, 0});
  std::optional<CodeHit> last;
  if (from < current && code.count(traveler.vcpu().regs.rip))  // searches look after `from`
    last = CodeHit{PositionName(from), traveler.vcpu().regs.rip, traveler.vcpu().regs};
  CodeHit hit;
  for (;;) {
    const auto stop = search_code(hit);
    if (stop == SearchStop::kEnd) return last;
    if (stop == SearchStop::kLimit) break;
    if (stop == SearchStop::kInterrupted) {
      interrupted = true;
      return last;
    }
    if (hit.name.is_exact() && hit.name.base >= current) return last;
    last = hit;
  }
  // Exactly at current's (L, a): the rest of the way by steps.
  while (traveler.position() < current) {
    if (traveler.position() > from && code.count(traveler.vcpu().regs.rip))
      last = CodeHit{PositionName(traveler.position()), traveler.vcpu().regs.rip,
                     traveler.vcpu().regs};
    if (traveler.step_instruction().kind == StopReason::Kind::kEnd) break;
  }
  return last;
}

// The last arrival at one of `code` before the hit named `current` (by
// arrivals) in its own stretch, found by searching that stretch again from
// its base: the names the search gives are the same, so no step count is
// needed (which, in a stretch walked through native user code, would cost
// single steps through that code).
std::optional<CodeHit> TimeTraveler::Impl::last_code_hit_before_named(
    TimeTraveler& traveler, const std::set<uint64_t>& code, const PositionName& current,
    bool& interrupted) {
  traveler.seek(current.base);
  search =
      CodeSearch::over(code, librr::Position{current.base.landmark, current.base.async_seq + 1, 0});
  std::optional<CodeHit> last;
  if (code.count(traveler.vcpu().regs.rip))
    last = CodeHit{PositionName(current.base), traveler.vcpu().regs.rip, traveler.vcpu().regs};
  CodeHit hit;
  for (;;) {
    const auto stop = search_code(hit);
    if (stop == SearchStop::kInterrupted) interrupted = true;
    if (stop != SearchStop::kHit || hit.name == current) return last;
    last = hit;
  }
}

StopReason TimeTraveler::reverse_continue(const Breakpoints& breakpoints) {
  Impl& s = *impl_;
  if (breakpoints.writes.empty() && here().arrivals.size() == 1 &&
      breakpoints.code.count(here().arrivals.front().pc)) {
    const PositionName current = here();
    bool interrupted = false;
    auto last = s.last_code_hit_before_named(*this, breakpoints.code, current, interrupted);
    if (interrupted) return {StopReason::Kind::kInterrupted, 0};
    if (last) {
      s.land_on(*last);
      return {StopReason::Kind::kBreakpoint, last->pc};
    }
    seek(current.base);  // none in the stretch before it: go on from its base
  }
  librr::Position current = position();
  if (breakpoints.writes.empty() && !breakpoints.code.empty()) {
    while (current != librr::Position{}) {
      const Checkpoint* checkpoint = s.checkpoints.at_or_before(
          current.steps > 0
              ? librr::Position{current.landmark, current.async_seq, 0}
              : previous_base(current, s.replay->recording().log_path(), s.options.key));
      const librr::Position from = checkpoint ? checkpoint->position : librr::Position{};
      bool interrupted = false;
      auto last = s.last_code_hit_between(*this, breakpoints.code, from, current, interrupted);
      if (interrupted) return {StopReason::Kind::kInterrupted, 0};
      if (last) {
        s.land_on(*last);
        return {StopReason::Kind::kBreakpoint, last->pc};
      }
      current = from;
    }
    seek({});
    return {StopReason::Kind::kStart, 0};
  }
  while (current != librr::Position{}) {
    // The stretch [checkpoint before current, current), scanned by steps.
    const Checkpoint* checkpoint = s.checkpoints.at_or_before(
        current.steps > 0
            ? librr::Position{current.landmark, current.async_seq, 0}
            : previous_base(current, s.replay->recording().log_path(), s.options.key));
    const librr::Position from = checkpoint ? checkpoint->position : librr::Position{};
    WatchedBytes watched;
    bool first = true;
    auto last = last_stop_between(
        *this, from, current,
        [&]() -> std::optional<StopReason> {
          WatchedBytes now = read_watched(*this, breakpoints);
          std::optional<StopReason> stop;
          if (!first) stop = changed_watch(breakpoints, watched, now);
          first = false;
          watched = std::move(now);
          if (!stop && breakpoints.code.count(s.read_rip()))
            stop = StopReason{StopReason::Kind::kBreakpoint, s.read_rip()};
          return stop;
        },
        [&] { return s.interrupt_requested(); });
    if (last) {
      seek(last->first);
      return last->second;
    }
    current = from;
  }
  seek({});
  return {StopReason::Kind::kStart, 0};
}

}  // namespace analyzer
