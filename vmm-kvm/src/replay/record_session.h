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

// What record logs and when (docs/record-replay.md, "Recording policy").
struct RecordPolicy {
  // At a synchronous exit, a clock sample is logged only when the guest can
  // see time there: the exit accesses a timed device (PIT, RTC) and guest time
  // lags host time by this much, or a device deadline has passed in host time
  // (so its interrupt is raised at this landmark instead of a later stop).
  uint64_t clock_granularity_ns = 1'000'000;
  // A due timer interrupt is at most this late (counted from the deadline or
  // from the guest's last resume, whichever is later) before the vCPU is
  // stopped to deliver it: the coalescing bound for CPU-bound stretches.
  uint64_t max_interrupt_lateness_ns = 4'000'000;
  // A pending interrupt the guest cannot take (IF=0) is retried this often
  // (such stops are not logged unless input arrived: see stop_can_stay_unlogged).
  uint64_t retry_quantum_ns = 2'000'000;
  // Guest time between state digests (plus one at the end). Guest rather
  // than host time: an idle guest's digests would otherwise be a third of
  // its log, and a digest hashes all of guest RAM.
  uint64_t digest_interval_ns = 10'000'000'000;
};

struct RecordStats {
  uint64_t landmarks = 0;
  uint64_t async_positions = 0;
  uint64_t unlogged_stops = 0;  // asynchronous stops where nothing could happen
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
  bool exit_observes_time() const;
  bool deadline_passed_in_host_time() const;
  void sample_clock_if_lagging();
  void at_landmark();
  void at_halt();
  bool stop_can_stay_unlogged() const;
  void at_async_stop();
  void log_async_position();
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
  uint64_t last_digest_guest_ns_;
  uint64_t last_reset_landmark_ = 0;
  bool unlogged_progress_ = false;  // the guest ran since the last logged position
  std::optional<RunResult> result_;
  RecordStats stats_;
};

}  // namespace vmm
