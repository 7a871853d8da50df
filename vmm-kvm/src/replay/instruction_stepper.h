#pragma once
// Executes exactly one guest instruction with KVM_GUESTDBG_SINGLESTEP, for
// analysis positions (librr::Position::steps). How a completed step shows up
// differs by host and privilege level (HOST-KVM-NOTES.md: DEBUG at CPL0, but
// SHUTDOWN at CPL3 on kvm_pvm), so the exit reasons that mean "one
// instruction done" come from `rr-vmm probe`'s measurements, not from here.
// No interrupt is injected while stepping: the caller delivers interrupts
// only at logged positions. Where the host delivers a CPL3 step's #DB to the
// guest instead (kvm_pvm), the step is caught at the guest's #DB handler and
// the delivery undone (guest_handler_step.h), and a step over the kernel's
// return to user mode stops with an int3 (return_to_user_step.h). Each step
// is exactly one instruction (a rep-string instruction: what the host's
// single step does, docs/analyzer.md) and leaves no trap flag behind in
// guest memory (trap_flag_traces.h).
#include <cstdint>
#include <set>

#include "machine/machine.h"

namespace vmm {

struct SingleStepSupport {
  // Exit reasons reported after one single-stepped instruction, per CPL;
  // empty when single-stepping at that level does not work on this host.
  std::set<uint32_t> cpl0_exit_reasons;
  std::set<uint32_t> cpl3_exit_reasons;
  // CPL3 steps whose #DB goes to the guest's IDT, caught at its handler
  // (guest_handler_step.h); used when cpl3_exit_reasons is empty.
  bool cpl3_caught_at_guest_handler = false;
  // A step over the kernel's iretq to CPL3 runs on into user code (probe:
  // step_edges.iretq_step_runs_user_code): step it with an int3 at the
  // return address instead (return_to_user_step.h; needs the catch above).
  bool return_to_user_by_int3 = false;
  // Reads the cached probe result (measuring it the first time).
  static SingleStepSupport from_probe();
};

class InstructionStepper {
 public:
  enum class Result {
    kStepped,      // one instruction executed, no exit to handle
    kSynchronous,  // the instruction made a PIO/MMIO/HLT exit (a landmark)
  };
  InstructionStepper(Machine& machine, SingleStepSupport support);
  // Throws librr::Error if the machine stopped otherwise (internal error),
  // or if single-stepping is unsupported at the current privilege level.
  Result step();
  // Whether a step here executes exactly one instruction, so that stepping
  // can reach every logged asynchronous stop: always, since steps at CPL3
  // on kvm_pvm are exact too (tests/analyzer/test_travel_steps.cpp).
  bool exact_here() const { return true; }

 private:
  Result step_with_host_single_step();
  Result step_via_guest_handler(const std::set<uint32_t>& before_reasons);
  bool completed_step(const std::set<uint32_t>& before_reasons);

  Machine& machine_;
  SingleStepSupport support_;
};

// The vCPU's current privilege level (CS.RPL, as KVM reports it; from the
// sync-regs copy where it holds, Vcpu::get_sregs_for_mode).
int current_cpl(Machine& machine);

}  // namespace vmm
