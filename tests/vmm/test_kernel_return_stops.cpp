// Kernel-return stops (vmm-kvm/src/replay/kernel_return_stop.h): while an
// interrupt is due, the recorder delivers it where the guest kernel returns
// to user mode after a counted kernel entry, and logs only a hash of the
// registers there; replay re-executes to that return. The ticks guest's
// user loops make a system call every 2^16 iterations, so their timer
// interrupts go this way.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "record_replay_support.h"
#include "replay/hardware_breakpoints.h"

namespace fs = std::filesystem;
using namespace rr_test;

namespace {

std::vector<const librr::AsyncPosition*> kernel_return_stops(
    const std::vector<librr::Event>& events) {
  std::vector<const librr::AsyncPosition*> stops;
  for (const librr::Event& event : events)
    if (const auto* stop = std::get_if<librr::AsyncPosition>(&event))
      if (std::holds_alternative<librr::KernelReturn>(stop->memory)) stops.push_back(stop);
  return stops;
}

class KernelReturnStops : public RecordReplay {
 protected:
  void SetUp() override {
    RecordReplay::SetUp();
    if (IsSkipped()) return;
    // The entries are counted with debug registers, which must work at CPL0
    // and not at CPL3 (else rr-vmm does not count: kernel_entry_counting_useful).
    const vmm::HardwareBreakpointSupport support = vmm::HardwareBreakpointSupport::from_probe();
    if (!support.honoured_at_cpl0 || support.honoured_at_cpl3)
      GTEST_SKIP() << "this host does not count kernel entries (debug registers at CPL0 "
                   << support.honoured_at_cpl0 << ", at CPL3 " << support.honoured_at_cpl3
                   << "): no kernel-return stops";
  }
};

}  // namespace

TEST_F(KernelReturnStops, TicksUserLoopsTakeTheirInterruptsAtKernelReturns) {
  record_and_replay_three_times("ticks", "--guest ticks --serial-in none");
  const std::vector<librr::Event> events = read_log(dir_ / "ticks");
  const auto stops = kernel_return_stops(events);
  ASSERT_GE(stops.size(), 8u) << read_file(dir_ / "record.err");
  for (const librr::AsyncPosition* stop : stops) {
    EXPECT_TRUE(stop->vcpu_state.empty()) << "replay re-executes to it: no state logged";
    // A 32-bit check of the registers (log format 2.11).
    const auto& at_return = std::get<librr::KernelReturn>(stop->memory);
    EXPECT_EQ(at_return.hash_bits, 32);
    EXPECT_LE(at_return.registers_xxh3, 0xffffffffu);
    ASSERT_TRUE(stop->kernel_entries.has_value());
    EXPECT_GE(stop->kernel_entries->count, 1u);
    // An interrupt is delivered right there.
    const auto delivery = std::find_if(events.begin(), events.end(), [&](const librr::Event& e) {
      const auto* irq = std::get_if<librr::InterruptDelivery>(&e);
      return irq && irq->pos == stop->pos;
    });
    EXPECT_NE(delivery, events.end()) << stop->pos.to_string();
  }
  const std::string replayed = read_file(dir_ / "replay.err");
  EXPECT_NE(replayed.find(std::to_string(stops.size()) + " at kernel returns"), std::string::npos)
      << replayed;
}

// Without them the same guest's user-mode stops log their vCPU state and
// memory delta instead.
TEST_F(KernelReturnStops, TurnedOffTheUserStopsLogTheirState) {
  record_and_replay_three_times("ticks", "--guest ticks --serial-in none --no-kernel-return-stops");
  EXPECT_TRUE(kernel_return_stops(read_log(dir_ / "ticks")).empty());
}

// A log edited to name another return (one more kernel entry before it, or
// other registers) is caught where replay arrives.
TEST_F(KernelReturnStops, EditedStopIsCaught) {
  const fs::path rec = dir_ / "ticks";
  ASSERT_TRUE(recorded(rec, "--guest ticks --serial-in none"));
  const std::vector<librr::Event> original = read_log(rec);
  const auto index_of_stop = [&](size_t nth) -> size_t {
    size_t seen = 0;
    for (size_t i = 0; i < original.size(); ++i)
      if (const auto* stop = std::get_if<librr::AsyncPosition>(&original[i]))
        if (std::holds_alternative<librr::KernelReturn>(stop->memory) && seen++ == nth) return i;
    return original.size();
  };
  const size_t at = index_of_stop(2);
  ASSERT_LT(at, original.size()) << "fewer than three kernel-return stops";

  std::vector<librr::Event> later = original;
  ++std::get<librr::AsyncPosition>(later[at]).kernel_entries->count;
  rewrite_log(rec, later);
  EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 1);
  EXPECT_NE(read_file(dir_ / "replay.err").find("replay DIVERGED"), std::string::npos)
      << read_file(dir_ / "replay.err");

  std::vector<librr::Event> other = original;
  std::get<librr::KernelReturn>(std::get<librr::AsyncPosition>(other[at]).memory).registers_xxh3 ^=
      1;
  rewrite_log(rec, other);
  EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 1);
  EXPECT_NE(read_file(dir_ / "replay.err").find("general registers differ"), std::string::npos)
      << read_file(dir_ / "replay.err");

  rewrite_log(rec, original);
  EXPECT_EQ(run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err"), 0)
      << read_file(dir_ / "replay.err");
}

// A system call whose kernel work outlasts the kick (`syscallwork`: each
// one first runs ~5 ms of emulated kernel code with interrupts on, as a Linux page
// fault reading a file does) is waited out: the recorder watches the
// kernel's return from where the kick found it (the frame the entry saved
// is still on the kernel stack) and delivers there, instead of logging the
// vCPU state in kernel code. Replay re-executes to the same return.
TEST_F(KernelReturnStops, KernelWorkEnteredFromUserModeIsWaitedOut) {
  record_and_replay_three_times("ticks", "--guest ticks --serial-in none --append syscallwork=100");
  const std::string recorded = read_file(dir_ / "record.err");
  const size_t at = recorded.find(" watched from kernel code");
  ASSERT_NE(at, std::string::npos) << recorded;
  const size_t open = recorded.rfind('(', at);
  ASSERT_NE(open, std::string::npos) << recorded;
  EXPECT_GE(std::stoul(recorded.substr(open + 1, at - open - 1)), 8u) << recorded;
  EXPECT_GE(kernel_return_stops(read_log(dir_ / "ticks")).size(), 8u) << recorded;
}
