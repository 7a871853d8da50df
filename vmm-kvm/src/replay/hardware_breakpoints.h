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

// Enters the guest as it is set up until it stops for something other than
// a spurious or asynchronous exit (see run_with_hardware_breakpoints).
Machine::Exit enter_until_stopped(Machine& machine);

// Enters the guest with `addresses` armed (single-stepping too if asked)
// until it stops for something other than a spurious or asynchronous exit:
// a DEBUG exit (hit or step), a synchronous or a terminal exit. Disarms
// afterwards, also when entering the guest throws.
Machine::Exit run_with_hardware_breakpoints(Machine& machine, std::span<const uint64_t> addresses,
                                            bool single_step = false);

// True if the last exit was a DEBUG exit (with breakpoints armed: one of them).
bool stopped_at_hardware_breakpoint(Machine& machine);

// `exit`, the last one, is a DEBUG exit (a breakpoint hit or a completed
// single step); the second form also wants the vCPU at one of `addresses`.
bool is_debug_exit(Machine& machine, const Machine::Exit& exit);
bool stopped_at_one_of(Machine& machine, const Machine::Exit& exit,
                       std::span<const uint64_t> addresses);

}  // namespace vmm
