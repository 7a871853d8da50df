#pragma once
// Code breakpoints in the vCPU's debug registers (DR0-DR3), set through
// KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_USE_HW_BP so that the guest's own
// debug registers are untouched and a hit is a KVM DEBUG exit, not a #DB in
// the guest. Whether the host honours them at a privilege level is measured
// by `rr-vmm probe` (HOST-KVM-NOTES.md: kvm_pvm honours them at CPL0, where
// its emulator runs the guest, and not at CPL3, where the guest runs natively).
//
// A breakpoint stops the vCPU before the instruction at its address
// executes; resuming there re-triggers it, so the caller steps over it with
// the breakpoints off (InstructionStepper does exactly that: it replaces the
// guest-debug setting for one instruction).
#include <cstddef>
#include <cstdint>
#include <span>

#include "machine/machine.h"
#include "machine/vcpu_kicker.h"

namespace vmm {

inline constexpr size_t kHardwareBreakpointSlots = 4;

struct HardwareBreakpointSupport {
  bool honoured_at_cpl0 = false;
  bool honoured_at_cpl3 = false;
  // Reads the cached probe result (measuring it the first time).
  static HardwareBreakpointSupport from_probe();
};

// Arms up to kHardwareBreakpointSlots guest-virtual code addresses (an empty
// span and no single step disarms), single-stepping too if asked. Throws
// librr::Error with more addresses than slots.
void arm_hardware_breakpoints(Machine& machine, std::span<const uint64_t> addresses,
                              bool single_step = false);

// Keeps `addresses` armed for its lifetime and disarms them however the
// scope ends (a replay error thrown while they are armed included).
class ArmedHardwareBreakpoints {
 public:
  ArmedHardwareBreakpoints(Machine& machine, std::span<const uint64_t> addresses,
                           bool single_step = false);
  ~ArmedHardwareBreakpoints();
  ArmedHardwareBreakpoints(const ArmedHardwareBreakpoints&) = delete;
  ArmedHardwareBreakpoints& operator=(const ArmedHardwareBreakpoints&) = delete;

 private:
  Machine& machine_;
};

// A bound on how long replay re-executes towards one stop. A stop that an
// edited or damaged log names wrongly is otherwise never reached in a guest
// loop that waits for an interrupt (replay delivers none before the stop)
// and makes no exit: replay would hang instead of reporting the divergence.
// While it lives, the kicker's timer stops the vCPU at the deadline (bound
// to this thread for it if it was not), and enter_until_stopped() given
// at() returns the asynchronous exit that comes after it. The recorder only
// makes stops it measured to be found far sooner (stretch_searchable).
inline constexpr uint64_t kReexecutionLimitNs = 30'000'000'000;
class ReexecutionDeadline {
 public:
  explicit ReexecutionDeadline(Machine& machine, uint64_t limit_ns = kReexecutionLimitNs);
  ~ReexecutionDeadline();
  ReexecutionDeadline(const ReexecutionDeadline&) = delete;
  ReexecutionDeadline& operator=(const ReexecutionDeadline&) = delete;
  uint64_t at() const { return at_; }

 private:
  Machine& machine_;
  uint64_t at_;
  uint64_t kick_before_;
  bool bound_here_ = false;
};

// Enters the guest as it is set up until it stops for something other than
// a spurious or asynchronous exit (see run_with_hardware_breakpoints), or
// for an asynchronous exit at or after `deadline_ns` (host CLOCK_MONOTONIC,
// a ReexecutionDeadline's), which it returns.
Machine::Exit enter_until_stopped(Machine& machine, uint64_t deadline_ns = VcpuKicker::kNever);

// Enters the guest with `addresses` armed (single-stepping too if asked)
// until it stops for something other than a spurious or asynchronous exit:
// a DEBUG exit (hit or step), a synchronous or a terminal exit. Disarms
// afterwards, also when entering the guest throws.
Machine::Exit run_with_hardware_breakpoints(Machine& machine, std::span<const uint64_t> addresses,
                                            bool single_step = false,
                                            uint64_t deadline_ns = VcpuKicker::kNever);

// True if the last exit was a DEBUG exit (with breakpoints armed: one of them).
bool stopped_at_hardware_breakpoint(Machine& machine);

// `exit`, the last one, is a DEBUG exit (a breakpoint hit or a completed
// single step); the second form also wants the vCPU at one of `addresses`.
bool is_debug_exit(Machine& machine, const Machine::Exit& exit);
bool stopped_at_one_of(Machine& machine, const Machine::Exit& exit,
                       std::span<const uint64_t> addresses);

}  // namespace vmm
