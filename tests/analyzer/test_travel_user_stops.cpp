// The stretch before an asynchronous stop in user mode (a timer kick in a
// native loop), which replay installs without executing: a breakpoint search
// still finds every kernel entry the recorder counted there (log format 2.2
// kernel_entries), system calls made from user mode without I/O included.
// ticks' user loop calls sys_ticks until the tick count moves, so its stops
// in user mode follow many such calls.
#include <fmt/format.h>

#include <algorithm>

#include "librr/log.h"
#include "librr/recording.h"
#include "machine/vcpu_state.h"
#include "test_travel_support.h"
#include "travel/time_traveler.h"

namespace {

using namespace travel_test;
using analyzer::Breakpoints;
using analyzer::StopReason;
using analyzer::TimeTraveler;

struct UserStop {
  librr::Position stop;
  librr::CodeArrivals entries;
  bool kernel_return = false;  // log format 2.8: no state, in user mode right after the return
};

std::vector<UserStop> counted_user_stops(const fs::path& rec) {
  std::vector<UserStop> stops;
  librr::LogReader reader(librr::RecordingDir::open(rec).log_path());
  while (auto event = reader.next()) {
    const auto* async = std::get_if<librr::AsyncPosition>(&*event);
    if (!async) continue;
    if (std::holds_alternative<librr::KernelReturn>(async->memory)) {
      stops.push_back({async->pos, *async->kernel_entries, true});
      continue;
    }
    if (!stops_in_user_mode(*async)) {
      EXPECT_FALSE(async->kernel_entries) << "a count at a CPL0 stop " << async->pos.to_string();
      continue;
    }
    if (async->kernel_entries && async->kernel_entries->count > 0)
      stops.push_back({async->pos, *async->kernel_entries});
  }
  return stops;
}

TEST(TravelUserStops, EveryKernelEntryCountedBeforeAStopInUserModeIsFound) {
  SKIP_WITHOUT_KVM();
  if (!fs::exists(guest_elf("ticks"))) GTEST_SKIP() << "test guests not built";
  const fs::path rec = ticks_recording();
  const std::vector<UserStop> stops = counted_user_stops(rec);
  ASSERT_FALSE(stops.empty())
      << "no async stop in user mode with kernel entries before it: was the recording made "
         "with `--no-kernel-entries`, or on a host whose debug registers work at CPL3?";

  TimeTraveler traveler(rec, {});
  size_t checked = 0, signal_stops = 0, kernel_returns = 0;
  std::string counts;
  // The first three of each kind: stops a signal made (state installed) and
  // kernel-return stops (re-executed to; the walk steps into them).
  for (const UserStop& user_stop : stops) {
    size_t& of_kind = user_stop.kernel_return ? kernel_returns : signal_stops;
    if (of_kind == 3) continue;
    ++of_kind;
    ++checked;
    SCOPED_TRACE(user_stop.stop.to_string());
    const librr::Position base{user_stop.stop.landmark, user_stop.stop.async_seq - 1, 0};
    traveler.seek(base);
    Breakpoints entries;
    entries.code.insert(user_stop.entries.addresses.begin(), user_stop.entries.addresses.end());
    // An arrival at the base's own rip counts (schemas/log-format.md).
    uint64_t found = entries.code.count(traveler.vcpu().regs.rip);
    for (;;) {
      const StopReason stop = traveler.continue_forward(entries);
      ASSERT_EQ(stop.kind, StopReason::Kind::kBreakpoint);
      const analyzer::PositionName here = traveler.here();
      const librr::Position at = here.base;
      if (std::make_pair(at.landmark, at.async_seq) !=
          std::make_pair(base.landmark, base.async_seq))
        break;
      EXPECT_EQ(traveler.vcpu().sregs.cs.selector & 3, 0) << here.to_string();
      ++found;
    }
    counts += fmt::format(" {}{}", found, user_stop.kernel_return ? "k" : "");
    EXPECT_EQ(found, user_stop.entries.count)
        << "kernel entries found between " << base.to_string() << " and the stop";
  }
  EXPECT_GT(kernel_returns, 0u) << "ticks' user loops take interrupts at kernel returns";
  std::printf(
      "[ info ] %zu stops in user mode after kernel entries; entries found before %zu of them "
      "(k: kernel-return stop):%s\n",
      stops.size(), checked, counts.c_str());
}

}  // namespace
