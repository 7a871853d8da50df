#pragma once
// Drives a Machine while logging every nondeterministic input (docs/record-replay.md).
// The loop mirrors ReplaySession's step for step: each point where record
// consults the outside world has one twin in replay that reads the log.
#include <cstdint>
#include <memory>
#include <optional>

#include "clock/virtual_clock.h"
#include "librr/recorder.h"
#include "machine/machine.h"
#include "replay/memory_shadow.h"
#include "replay/session_common.h"

namespace vmm {

struct RecordPolicy {
  // Guest time lags host time by at most this much before a sample is logged
  // at a synchronous exit.
  uint64_t clock_granularity_ns = 1'000'000;
  // A due timer interrupt is at most this late before the vCPU is stopped to
  // deliver it (coalescing bound for CPU-bound stretches).
  uint64_t max_interrupt_lateness_ns = 4'000'000;
  // A pending interrupt the guest cannot take (IF=0) is retried this often.
  uint64_t retry_quantum_ns = 10'000'000;
  // Host time between state digests.
  uint64_t digest_interval_ns = 1'000'000'000;
};

struct RecordStats {
  uint64_t landmarks = 0;
  uint64_t async_positions = 0;
  uint64_t interrupts = 0;
  uint64_t clock_samples = 0;
  uint64_t idle_skips = 0;
  uint64_t digests = 0;
  uint64_t net_frames = 0;       // received frames logged (channel net0)
  uint64_t net_frame_bytes = 0;  // their payload bytes
};

class RecordSession {
 public:
  // The machine must use `clock` and have dirty-page tracking on; `timeline`
  // is shared with the RecordingSerialInput wired into the machine.
  RecordSession(Machine& machine, VirtualClock& clock, librr::Recorder& recorder,
                Timeline& timeline, SerialInput* serial_input, RecordPolicy policy = {});

  // Runs until the guest ends or Machine::request_stop(); finishes the log.
  RunResult run();
  const RecordStats& stats() const { return stats_; }

 private:
  uint64_t guest_now_from_host() const;
  uint64_t host_time_of(uint64_t guest_ns) const;
  void set_clock(uint64_t guest_ns, bool logged);
  void sample_clock_if_lagging();
  void at_landmark();
  void at_halt();
  void at_async_stop();
  void try_deliver_interrupt();
  void maybe_digest(bool force);
  void arm_kick();
  RunResult finish(RunResult result);

  Machine& machine_;
  VirtualClock& clock_;
  librr::Recorder& recorder_;
  Timeline& timeline_;
  SerialInput* serial_input_;
  RecordingNetInput net_input_;
  RecordPolicy policy_;
  MemoryShadow shadow_;
  DirtyPages dirty_;
  uint64_t host_origin_ns_;
  uint64_t last_digest_host_ns_;
  uint64_t last_reset_landmark_ = 0;
  std::optional<RunResult> result_;
  RecordStats stats_;
};

}  // namespace vmm
