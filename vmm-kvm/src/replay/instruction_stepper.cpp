#include "replay/instruction_stepper.h"

#include <fmt/format.h>

#include "librr/error.h"
#include "probe/probe.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"
#include "replay/return_to_user_step.h"
#include "replay/trap_flag_traces.h"

namespace vmm {

SingleStepSupport SingleStepSupport::from_probe() {
  const probe::ProbeResult result = probe::load_or_run_probe();
  SingleStepSupport support;
  for (const int cpl : {0, 3}) {
    const probe::SingleStepCheck* check = result.single_step_at(cpl);
    if (!check || !check->ok()) continue;
    if (cpl == 3 && check->delivery == "guest-idt" && check->caught_at_handler)
      support.cpl3_caught_at_guest_handler = true;
    if (!check->one_instruction_per_run) continue;
    (cpl == 0 ? support.cpl0_exit_reasons : support.cpl3_exit_reasons).insert(check->exit_reason);
  }
  support.return_to_user_by_int3 = support.cpl3_caught_at_guest_handler && result.step_edges.ok() &&
                                   result.step_edges.iretq_step_runs_user_code;
  return support;
}

int current_cpl(Machine& machine) { return machine.vcpu().get_sregs_for_mode().cs.selector & 3; }

InstructionStepper::InstructionStepper(Machine& machine, SingleStepSupport support)
    : machine_(machine), support_(std::move(support)) {}

InstructionStepper::Result InstructionStepper::step() {
  // On kvm_pvm the host's step over the kernel's iretq would run the user
  // code on until it next enters the kernel (return_to_user_step.h).
  if (support_.return_to_user_by_int3 && current_cpl(machine_) == 0 &&
      at_return_to_user(machine_) && step_return_to_user(machine_))
    return Result::kStepped;
  TrapFlagTraces traces(machine_);
  const Result result = step_with_host_single_step();
  traces.remove();
  return result;
}

InstructionStepper::Result InstructionStepper::step_with_host_single_step() {
  const int cpl_before = current_cpl(machine_);
  const std::set<uint32_t>& before =
      cpl_before == 3 ? support_.cpl3_exit_reasons : support_.cpl0_exit_reasons;
  if (support_.cpl3_caught_at_guest_handler) return step_via_guest_handler(before);
  if (before.empty())
    throw librr::Error(fmt::format(
        "single-stepping at CPL{} does not work on this host (see `rr-vmm probe`)", cpl_before));
  // No breakpoints: the host's own single step, switched off however the step ends.
  const Machine::Exit exit = run_with_hardware_breakpoints(machine_, {}, /*single_step=*/true);
  if (exit.kind == Machine::Exit::Kind::kSynchronous) return Result::kSynchronous;
  if (completed_step(before)) return Result::kStepped;
  throw librr::Error("single step failed: " + exit.result.message);
}

// A step that crosses privilege levels (ud2 into the kernel, iretq to user)
// may report either level's reason.
bool InstructionStepper::completed_step(const std::set<uint32_t>& before_reasons) {
  const uint32_t reason = machine_.run_state().exit_reason;
  const int cpl_after = current_cpl(machine_);
  const std::set<uint32_t>& after =
      cpl_after == 3 ? support_.cpl3_exit_reasons : support_.cpl0_exit_reasons;
  return before_reasons.count(reason) || after.count(reason);
}

// Every step, at CPL0 too: an iretq whose frame has TF set (the guest's
// own) returns to user mode, runs one user instruction and delivers its #DB
// to the guest.
InstructionStepper::Result InstructionStepper::step_via_guest_handler(
    const std::set<uint32_t>& before_reasons) {
  switch (step_caught_at_guest_handler(machine_)) {
    case HandlerStepResult::kStepped:
      return Result::kStepped;
    case HandlerStepResult::kSynchronous:
      return Result::kSynchronous;
    case HandlerStepResult::kOther:
      break;
  }
  // At CPL0 (the step started there, or trapped into the kernel: ud2, a
  // fault) the host's single step exits after one instruction.
  if (completed_step(before_reasons) ||
      (current_cpl(machine_) == 0 &&
       support_.cpl0_exit_reasons.count(machine_.run_state().exit_reason)))
    return Result::kStepped;
  throw librr::Error(fmt::format("single step failed: exit reason {} at {}",
                                 machine_.run_state().exit_reason, machine_.describe_rip()));
}

}  // namespace vmm
