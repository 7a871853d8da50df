// A machine snapshot holds everything the guest's future depends on. Shown on
// the `ticks` guest, whose output hash folds in where every timer interrupt
// landed (CPL3 registers included): machine A is snapshotted mid-run and then
// continues under record; machine B is built fresh, restored from the
// snapshot and replays A's continuation. B must follow the log faithfully
// (every interrupt, async position and state digest checked) and print
// exactly what A printed after the snapshot. A free run cannot be compared
// byte for byte here: without a branch counter the instruction a CPL3 timer
// interrupt lands on is chosen by the host (docs/record-replay.md).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "boot/boot.h"
#include "clock/virtual_clock.h"
#include "librr/recorder.h"
#include "librr/replayer.h"
#include "machine/machine.h"
#include "replay/record_session.h"
#include "replay/replay_session.h"
#include "snapshot/machine_snapshot.h"
#include "test_machine_support.h"

namespace fs = std::filesystem;

namespace vmm {
namespace {

std::string guest_path(const std::string& name) {
  return std::string(RR_BINARY_DIR) + "/guests/" + name + ".elf";
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/rr-snapshot-machine-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Stops `machine` after `delay` unless cancelled first (also the watchdog).
class DelayedStop {
 public:
  DelayedStop(Machine& machine, std::chrono::milliseconds delay)
      : thread_([this, &machine, delay] {
          const auto until = std::chrono::steady_clock::now() + delay;
          while (!cancelled_ && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          if (!cancelled_) machine.request_stop();
        }) {}
  ~DelayedStop() {
    cancelled_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> cancelled_{false};
  std::thread thread_;
};

RunResult record(Machine& machine, VirtualClock& clock, const fs::path& log,
                 std::chrono::milliseconds stop_after) {
  librr::Recorder recorder(log, librr::LogWriterOptions{});
  Timeline timeline;
  RecordSession session(machine, clock, recorder, timeline, nullptr);
  DelayedStop stop(machine, stop_after);
  return session.run();
}

TEST(SnapshotMachine, TicksContinuationAfterRestoreReplaysExactly) {
  RR_SKIP_WITHOUT_KVM();
  if (!fs::exists(guest_path("ticks"))) GTEST_SKIP() << "ticks guest missing: build test-guests";
  TempDir dir;
  const fs::path snapshot = dir.path() / "mid.rrsnap";

  // Machine A: boot, record until stopped mid-run, snapshot, record the rest.
  VirtualClock clock_a;
  BufferSerialOutput output_a;
  MachineConfig config_a;
  config_a.serial_output = &output_a;
  config_a.clock = &clock_a;
  config_a.track_dirty_pages = true;
  Machine machine_a(config_a);
  boot::BootRequest request;
  request.kernel_path = guest_path("ticks");
  request.kernel = boot::read_file(request.kernel_path);
  boot::load_kernel(machine_a.vcpu(), machine_a.memory(), request);

  const RunResult first =
      record(machine_a, clock_a, dir.path() / "first.log", std::chrono::milliseconds(250));
  ASSERT_EQ(first.kind, RunResult::Kind::kStopped)
      << "the guest ended before the snapshot point: " << first.message;
  const uint64_t snapshot_time = clock_a.now_ns();
  machine_a.settle_vcpu();
  machine_a.kicker().acknowledge(&machine_a.run_state());  // the stop's kick is consumed
  save_machine_snapshot(machine_a, snapshot);
  const size_t printed_before = output_a.contents().size();

  const RunResult rest =
      record(machine_a, clock_a, dir.path() / "rest.log", std::chrono::milliseconds(60'000));
  ASSERT_EQ(rest.kind, RunResult::Kind::kExitPort) << rest.message;
  EXPECT_EQ(rest.exit_status, 0);
  const std::string continuation = output_a.contents().substr(printed_before);
  ASSERT_NE(continuation.find("ticks hash="), std::string::npos) << continuation;

  // Machine B: built from nothing but the snapshot, driven by A's log.
  librr::Replayer replayer(dir.path() / "rest.log", librr::LogReaderOptions{});
  VirtualClock clock_b;
  Timeline timeline;
  ReplaySerialInput input(replayer, timeline);
  BufferSerialOutput output_b;
  MachineConfig config_b;
  config_b.serial_output = &output_b;
  config_b.serial_input = &input;
  config_b.clock = &clock_b;
  Machine machine_b(config_b);
  restore_machine_snapshot(machine_b, snapshot);
  EXPECT_EQ(clock_b.now_ns(), snapshot_time) << "the virtual clock is part of the snapshot";
  machine_b.settle_vcpu();
  ReplaySession session(machine_b, clock_b, replayer, timeline);
  const ReplayOutcome outcome = session.run();
  EXPECT_TRUE(outcome.faithful) << outcome.message;
  EXPECT_EQ(outcome.guest_exit_status, 0);
  EXPECT_GT(outcome.interrupts, 0u);
  EXPECT_GT(outcome.async_positions, 0u) << "no interrupt landed at CPL3 after the snapshot";
  EXPECT_EQ(output_b.contents(), continuation);
}

}  // namespace
}  // namespace vmm
