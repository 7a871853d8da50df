// Asynchronous stops in kernel code logged as registers plus a pages digest
// and found again at replay by a hardware-breakpoint search
// (docs/record-replay.md, "Searched positions"), on the real ticks guest
// with `bootspin=3`: before any user task runs, its kernel spins at CPL0
// with interrupts on for 3 ticks counting in a register, then 3 counting
// only in memory (every pass of that loop has the same registers).
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "machine/vcpu_state.h"
#include "record_replay_support.h"
#include "replay/searched_position.h"

namespace fs = std::filesystem;
using namespace rr_test;

namespace {

constexpr const char* kTicksWithBootSpin =
    "--search-kernel-stops --guest ticks --serial-in none --append bootspin=3";

class SearchedPositions : public RecordReplay {
 protected:
  void SetUp() override {
    RecordReplay::SetUp();
    if (IsSkipped()) return;
    if (!vmm::kernel_stop_search_cheap())
      GTEST_SKIP() << "this host does not make a breakpoint search for stops in kernel code "
                      "cheap (probe: hardware breakpoints at CPL0 and emulated CPL0 needed); "
                      "rr-vmm installs every stop here";
  }

  // The searched stops of a recording, in log order.
  static std::vector<librr::AsyncPosition> searched_stops(const fs::path& rec) {
    std::vector<librr::AsyncPosition> stops;
    for (librr::Event& event : read_log(rec))
      if (auto* async = std::get_if<librr::AsyncPosition>(&event);
          async && std::holds_alternative<librr::PagesDigest>(async->memory))
        stops.push_back(std::move(*async));
    return stops;
  }

  static vmm::VcpuState state_of(const librr::AsyncPosition& stop) {
    librr::ByteReader in(stop.vcpu_state, "async vCPU state");
    return vmm::VcpuState::load(in);
  }
};

// "N async positions (M found by breakpoint search, H hits; ...)".
uint64_t searched_count_in(const std::string& replay_err) {
  std::smatch match;
  if (!std::regex_search(replay_err, match, std::regex(R"(\((\d+) found by breakpoint search)")))
    return UINT64_MAX;
  return std::stoull(match[1].str());
}

}  // namespace

TEST_F(SearchedPositions, KernelStopsAreFoundBySearchAndReplayExactly) {
  record_and_replay_three_times("ticks", kTicksWithBootSpin);
  const std::vector<librr::AsyncPosition> stops = searched_stops(dir_ / "ticks");
  // The recorder searches the first stop in each line of code where the
  // guest stayed in kernel mode since the previous stop: the two boot spin
  // loops, and SYS_KSPIN's loops when two stops in a row land there.
  ASSERT_GE(stops.size(), 2u) << read_file(dir_ / "record.err");
  for (const librr::AsyncPosition& stop : stops) {
    const vmm::VcpuState state = state_of(stop);
    EXPECT_EQ(state.sregs.cs.selector & 3, 0) << stop.pos.to_string() << ": not kernel code";
    const auto& digest = std::get<librr::PagesDigest>(stop.memory);
    EXPECT_TRUE(std::is_sorted(digest.gfns.begin(), digest.gfns.end())) << stop.pos.to_string();
    EXPECT_FALSE(stop.kernel_entries) << stop.pos.to_string() << ": only stops in user mode count";
  }
  // The last replay found every one of them by search, none was installed.
  EXPECT_EQ(searched_count_in(read_file(dir_ / "replay.err")), stops.size())
      << read_file(dir_ / "replay.err");
}

// Only the pages digest tells apart the passes of SYS_KSPIN's memory-only
// loop (equal registers at each): an edited digest makes replay report a
// divergence naming the stop instead of taking some pass.
TEST_F(SearchedPositions, EditedPagesDigestIsCaught) {
  const fs::path rec = dir_ / "ticks";
  ASSERT_TRUE(recorded(rec, kTicksWithBootSpin));
  std::vector<librr::Event> events = read_log(rec);
  auto searched = std::find_if(events.begin(), events.end(), [](const librr::Event& event) {
    const auto* async = std::get_if<librr::AsyncPosition>(&event);
    return async && std::holds_alternative<librr::PagesDigest>(async->memory);
  });
  ASSERT_NE(searched, events.end()) << "no searched stop in the recording";
  auto& stop = std::get<librr::AsyncPosition>(*searched);
  std::get<librr::PagesDigest>(stop.memory).xxh3 ^= 1;
  rewrite_log(rec, events);
  const int replayed = run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err");
  const std::string err = read_file(dir_ / "replay.err");
  EXPECT_EQ(replayed, 1) << err;
  EXPECT_NE(err.find("searched stop " + stop.pos.to_string()), std::string::npos) << err;
}

// Off by default (experimental): every stop is installed.
TEST_F(SearchedPositions, ByDefaultEveryStopIsInstalled) {
  const fs::path rec = dir_ / "ticks";
  ASSERT_TRUE(recorded(rec, "--guest ticks --serial-in none --append bootspin=3"));
  EXPECT_TRUE(searched_stops(rec).empty());
  EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 0)
      << read_file(dir_ / "replay.err");
  EXPECT_EQ(searched_count_in(read_file(dir_ / "replay.err")), 0u);
}
