#include "replay/instruction_stepper.h"

#include <fmt/format.h>

#include "librr/error.h"
#include "probe/probe.h"

namespace vmm {
namespace {

void set_single_step(Machine& machine, bool enabled) {
  kvm_guest_debug debug{};
  if (enabled) debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
  machine.vcpu().set_guest_debug(debug);
}

// Switches single-stepping off again however the step ends.
struct SingleStepScope {
  Machine& machine;
  explicit SingleStepScope(Machine& m) : machine(m) { set_single_step(machine, true); }
  ~SingleStepScope() { set_single_step(machine, false); }
};

}  // namespace

SingleStepSupport SingleStepSupport::from_probe() {
  const probe::ProbeResult result = probe::load_or_run_probe();
  SingleStepSupport support;
  for (const int cpl : {0, 3}) {
    const probe::SingleStepCheck* check = result.single_step_at(cpl);
    if (!check || !check->ok() || !check->one_instruction_per_run) continue;
    (cpl == 0 ? support.cpl0_exit_reasons : support.cpl3_exit_reasons).insert(check->exit_reason);
  }
  return support;
}

int current_cpl(Machine& machine) { return machine.vcpu().get_sregs().cs.selector & 3; }

InstructionStepper::InstructionStepper(Machine& machine, SingleStepSupport support)
    : machine_(machine), support_(std::move(support)) {}

InstructionStepper::Result InstructionStepper::step() {
  const int cpl_before = current_cpl(machine_);
  const std::set<uint32_t>& before =
      cpl_before == 3 ? support_.cpl3_exit_reasons : support_.cpl0_exit_reasons;
  if (before.empty())
    throw librr::Error(fmt::format(
        "single-stepping at CPL{} does not work on this host (see `rr-vmm probe`)", cpl_before));
  Machine::Exit exit;
  {
    SingleStepScope scope(machine_);
    do {
      exit = machine_.enter_guest();
    } while (exit.kind == Machine::Exit::Kind::kSpurious ||
             exit.kind == Machine::Exit::Kind::kAsynchronous);
  }
  if (exit.kind == Machine::Exit::Kind::kSynchronous) return Result::kSynchronous;
  // A step that crosses privilege levels (ud2 into the kernel, iretq to user)
  // may report either level's reason.
  const uint32_t reason = machine_.run_state().exit_reason;
  const int cpl_after = current_cpl(machine_);
  const std::set<uint32_t>& after =
      cpl_after == 3 ? support_.cpl3_exit_reasons : support_.cpl0_exit_reasons;
  if (before.count(reason) || after.count(reason)) return Result::kStepped;
  throw librr::Error("single step failed: " + exit.result.message);
}

}  // namespace vmm
