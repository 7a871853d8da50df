#pragma once
// `rr-vmm run --clock virtual`: a live run whose guest time is a function of
// what the guest did, not of the host, so that a run (and every run restored
// from one of its snapshots) is repeatable without a recording.
//
// Guest time advances only
//  - by a fixed step at every synchronous exit (PIO, MMIO), before the device
//    model runs, and
//  - at a HLT with nothing pending, straight to the next device deadline
//    (an idle skip: no sleeping, idle stretches take no host time).
// Interrupts are delivered only where the guest stands at a synchronous exit
// or a HLT with IF=1 (deterministic here, see docs/record-replay.md). The
// vCPU is never stopped asynchronously unless `preempt_ns` is set: a guest
// that computes for that long (host time) without an exit is then stopped,
// its clock moved to the next deadline and the interrupt delivered there.
// Such a stop lands at an instruction the host picks, so it makes the run
// non-repeatable; the runner counts them.
#include <cstdint>
#include <optional>

#include "clock/virtual_clock.h"
#include "machine/machine.h"
#include "snapshot/snapshot_config.h"

namespace vmm {

class VirtualTimeRunner {
 public:
  static constexpr uint64_t kNoStopTime = UINT64_MAX;

  // `serial_input` is the machine's serial input (null: none), which can wake a halted guest.
  VirtualTimeRunner(Machine& machine, VirtualClock& clock, const ClockSettings& settings,
                    const SerialInput* serial_input);

  // Runs until the guest ends, Machine::request_stop(), or the guest clock
  // reaching `stop_at_ns` (checked between exits); the last two return kStopped.
  RunResult run(uint64_t stop_at_ns = kNoStopTime);

  // Asynchronous stops forced by `preempt_ns`: non-zero means not repeatable.
  uint64_t preemptions() const { return preemptions_; }
  uint64_t idle_skips() const { return idle_skips_; }

 private:
  void at_synchronous_exit();
  void at_halt();
  void at_asynchronous_stop(uint64_t armed_host_ns);
  void advance_clock_to(uint64_t guest_ns);

  Machine& machine_;
  VirtualClock& clock_;
  ClockSettings settings_;
  const SerialInput* serial_input_;
  std::optional<RunResult> result_;
  uint64_t preemptions_ = 0;
  uint64_t idle_skips_ = 0;
};

}  // namespace vmm
