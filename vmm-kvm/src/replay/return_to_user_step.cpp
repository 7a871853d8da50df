#include "replay/return_to_user_step.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "librr/error.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"

namespace vmm {
namespace {

constexpr uint8_t kBreakpointVector = 3, kGeneralProtectionVector = 13;
constexpr uint8_t kInt3 = 0xcc;
constexpr uint64_t kResumeFlag = 1ull << 16;

// The frame iretq pops: RIP, CS, RFLAGS, RSP, SS (the same layout as the
// frame an event pushes).
InterruptFrame popped_frame(Machine& machine, const kvm_regs& regs, const kvm_sregs& sregs) {
  return InterruptFrame::parse(
      read_guest_virtual(machine, sregs, regs.rsp, InterruptFrame::kBytes));
}

bool is_iretq(std::span<const uint8_t> code) {
  // REX with W set (0x48-0x4f), then IRET (0xcf).
  return code.size() >= 2 && (code[0] & 0xf8) == 0x48 && code[1] == 0xcf;
}

// What an int3 at CPL3 may raise: #BP through a DPL3 gate (Linux), #GP
// (error code 3*8+2) through a DPL0 one on real hardware. kvm_pvm delivers
// #BP even through the test kernel's DPL0 gate, so both are caught.
struct Int3Delivery {
  uint8_t vector = 0;
  GuestHandler handler;
  uint64_t pushed_bytes = 0;  // the frame, with the error code of #GP
  uint64_t pushed_at() const {
    return handler.frame_address + InterruptFrame::kBytes - pushed_bytes;
  }
  uint64_t trapping_rip(uint64_t int3_address) const {
    return vector == kBreakpointVector ? int3_address + 1 : int3_address;  // trap vs fault
  }
};

Int3Delivery int3_delivery(Machine& machine, const kvm_sregs& sregs, uint8_t vector) {
  Int3Delivery delivery;
  delivery.vector = vector;
  delivery.handler = GuestHandler::for_vector(machine, sregs, vector);
  delivery.pushed_bytes = InterruptFrame::kBytes + error_code_bytes(vector);
  return delivery;
}

}  // namespace

bool at_return_to_user(Machine& machine) {
  kvm::Vcpu& vcpu = machine.vcpu();
  const kvm_sregs sregs = vcpu.get_sregs_for_mode();
  if ((sregs.cs.selector & 3) != 0) return false;
  const kvm_regs regs = vcpu.get_regs();
  try {
    if (!is_iretq(read_guest_virtual(machine, sregs, regs.rip, 2))) return false;
    return (popped_frame(machine, regs, sregs).cs & 3) == 3;
  } catch (const librr::Error&) {
    return false;  // the step itself will fault, as it did when recorded
  }
}

namespace {

// What the step needs, read before it changes anything: nullopt when the
// return address or the kernel stack the int3's frame would overwrite does
// not read (or the IDT's handlers).
struct PlannedStep {
  kvm_regs regs_before;
  kvm_sregs sregs_before;
  InterruptFrame target;
  std::array<Int3Delivery, 2> deliveries;
  uint64_t stack_start = 0;  // both frames end at the same stack top; the larger covers both
  std::vector<uint8_t> code_byte, stack_before;
};

std::optional<PlannedStep> plan_step(Machine& machine) {
  kvm::Vcpu& vcpu = machine.vcpu();
  PlannedStep plan;
  plan.regs_before = vcpu.get_regs();
  plan.sregs_before = vcpu.get_sregs();
  try {
    plan.target = popped_frame(machine, plan.regs_before, plan.sregs_before);
    plan.deliveries = {int3_delivery(machine, plan.sregs_before, kBreakpointVector),
                       int3_delivery(machine, plan.sregs_before, kGeneralProtectionVector)};
    plan.stack_start = plan.deliveries[1].pushed_at();
    plan.code_byte = read_guest_virtual(machine, plan.sregs_before, plan.target.rip, 1);
    plan.stack_before = read_guest_virtual(machine, plan.sregs_before, plan.stack_start,
                                           plan.deliveries[1].pushed_bytes);
  } catch (const librr::Error&) {
    return std::nullopt;
  }
  return plan;
}

}  // namespace

bool return_to_user_steppable(Machine& machine) { return plan_step(machine).has_value(); }

bool step_return_to_user(Machine& machine) {
  kvm::Vcpu& vcpu = machine.vcpu();
  const std::optional<PlannedStep> plan = plan_step(machine);
  if (!plan) return false;
  const kvm_regs& regs_before = plan->regs_before;
  const kvm_sregs& sregs_before = plan->sregs_before;
  const kvm_debugregs debug_before = vcpu.get_debugregs();
  const InterruptFrame& target = plan->target;
  const std::array<Int3Delivery, 2>& deliveries = plan->deliveries;
  const uint64_t stack_start = plan->stack_start;
  const std::vector<uint8_t>& code_byte = plan->code_byte;
  const std::vector<uint8_t>& stack_before = plan->stack_before;

  const std::array<uint8_t, 1> int3{kInt3};
  write_guest_virtual(machine, sregs_before, target.rip, int3);
  struct PutCodeBack {
    Machine& machine;
    const kvm_sregs& sregs;
    uint64_t address;
    const std::vector<uint8_t>& byte;
    ~PutCodeBack() { write_guest_virtual(machine, sregs, address, byte); }
  } put_back{machine, sregs_before, target.rip, code_byte};

  // Single-stepping stays on: should the iretq fault in the kernel instead,
  // the vCPU stops after one instruction rather than run on.
  const uint64_t entries[] = {deliveries[0].handler.entry, deliveries[1].handler.entry};
  run_with_hardware_breakpoints(machine, entries, /*single_step=*/true);

  kvm_regs regs = vcpu.get_regs();
  kvm_sregs sregs = vcpu.get_sregs();
  const Int3Delivery* delivery = nullptr;
  for (const Int3Delivery& candidate : deliveries)
    if (machine.run_state().exit_reason == KVM_EXIT_DEBUG && regs.rip == candidate.handler.entry &&
        regs.rsp == candidate.pushed_at())
      delivery = &candidate;
  const InterruptFrame pushed =
      delivery ? InterruptFrame::parse(read_guest_virtual(
                     machine, sregs, delivery->handler.frame_address, InterruptFrame::kBytes))
               : InterruptFrame{};
  if (!delivery || pushed.rip != delivery->trapping_rip(target.rip) || pushed.cs != target.cs ||
      pushed.rsp != target.rsp || pushed.ss != target.ss)
    throw librr::Error(fmt::format(
        "step over the return to user mode at {:#x} (to {:#x}): expected the int3 planted there "
        "to stop at the guest's #BP or #GP handler ({:#x}, {:#x}), but the vCPU stopped at "
        "{:#x} (exit reason {})",
        regs_before.rip, target.rip, entries[0], entries[1], regs.rip,
        machine.run_state().exit_reason));

  // The state right after the iretq: what the CPU pushed for the int3
  // (RFLAGS as the iretq loaded it, but a fault sets RF in the pushed
  // image), CS/SS as the iretq loaded them from the GDT.
  regs.rip = target.rip;
  regs.rsp = target.rsp;
  regs.rflags = (pushed.rflags & ~kResumeFlag) | (target.rflags & kResumeFlag);
  sregs.cs = segment_from_gdt(machine, sregs, target.cs);
  sregs.ss = segment_from_gdt(machine, sregs, target.ss);
  write_guest_virtual(machine, sregs_before, stack_start, stack_before);
  vcpu.set_sregs(sregs);
  vcpu.set_regs(regs);
  vcpu.set_debugregs(debug_before);
  return true;
}

}  // namespace vmm
