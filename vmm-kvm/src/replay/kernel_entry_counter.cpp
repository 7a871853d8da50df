#include "replay/kernel_entry_counter.h"

#include <algorithm>

#include "librr/error.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"

namespace vmm {
namespace {

// The exceptions user code raises in practice: ud2 (the test guests' system
// calls), a protection fault, a page fault. Three of the four debug
// registers, so that an analyzer walking to a stop in user mode can arm a
// breakpoint beside them and run kernel code at full speed; an entry
// through any other vector (int3 included) is not counted.
constexpr uint8_t kEntryVectors[] = {6, 13, 14};

}  // namespace

bool kernel_entry_counting_useful() {
  const HardwareBreakpointSupport support = HardwareBreakpointSupport::from_probe();
  return support.honoured_at_cpl0 && !support.honoured_at_cpl3;
}

KernelEntryCounter::KernelEntryCounter(Machine& machine, bool enabled)
    : machine_(machine), enabled_(enabled) {}

void KernelEntryCounter::rearm(const kvm_sregs& sregs) {
  if (!enabled_) return;
  std::vector<uint64_t> entries;
  try {
    for (const uint8_t vector : kEntryVectors) {
      const uint64_t entry = GuestHandler::for_vector(machine_, sregs, vector).entry;
      if (entry != 0 && std::find(entries.begin(), entries.end(), entry) == entries.end())
        entries.push_back(entry);
    }
  } catch (const librr::Error&) {
    entries.clear();  // no IDT or TSS yet (or not mapped): no user mode either
  }
  if (entries == armed_) return;
  armed_ = std::move(entries);
  arm_hardware_breakpoints(machine_, armed_);
}

bool KernelEntryCounter::at_armed_entry(const Machine::Exit& exit) const {
  if (armed_.empty() || exit.kind != Machine::Exit::Kind::kTerminal ||
      machine_.run_state().exit_reason != KVM_EXIT_DEBUG)
    return false;
  const uint64_t rip = machine_.vcpu().get_regs().rip;
  return std::find(armed_.begin(), armed_.end(), rip) != armed_.end();
}

// No TrapFlagTraces here (InstructionStepper's clean-up after a step): the
// step runs a handler's first instruction at CPL0, where the emulator's pushf
// stores the guest's own flags, and no event is delivered during it (record
// injects interrupts only at positions, which come before a resume).
// One set_guest_debug before and one after: the step's setting is replaced
// by the entries' directly. A throw from enter_guest() ends the recording,
// so nothing needs re-arming then.
Machine::Exit KernelEntryCounter::step_over_entry() {
  arm_hardware_breakpoints(machine_, {}, /*single_step=*/true);
  const Machine::Exit exit = machine_.enter_guest();
  arm_hardware_breakpoints(machine_, armed_);
  return exit;
}

Machine::Exit KernelEntryCounter::enter_guest() {
  for (;;) {
    if (step_pending_) {
      const Machine::Exit step = step_over_entry();
      const bool stepped = step.kind == Machine::Exit::Kind::kTerminal &&
                           machine_.run_state().exit_reason == KVM_EXIT_DEBUG;
      if (stepped || step.kind == Machine::Exit::Kind::kSynchronous) step_pending_ = false;
      if (!stepped) return step;  // a landmark, a stop or an error: the caller's
    }
    const Machine::Exit exit = machine_.enter_guest();
    if (!at_armed_entry(exit)) return exit;
    ++count_;
    ++total_;
    step_pending_ = true;
  }
}

std::optional<librr::CodeArrivals> KernelEntryCounter::arrivals() const {
  if (armed_.empty()) return std::nullopt;
  return librr::CodeArrivals{armed_, count_};
}

}  // namespace vmm
