// Debug facilities the VMM can use to stop at an instruction: single-step,
// hardware breakpoints (debug registers) and software breakpoints (int3),
// each at CPL0 and CPL3 of a 64-bit guest. Where KVM does not turn a debug
// exception into an exit but delivers it to the guest's IDT, the probe also
// measures catching it with a hardware breakpoint on the guest's handler.
#include <cerrno>
#include <cstring>

#include "librr/error.h"
#include "probe/measurements.h"
#include "probe/snippet.h"

namespace vmm::probe {
namespace {

using std::chrono::milliseconds;

constexpr int kIncCount = 16;
constexpr uint64_t kIncLength = 3;  // 48 ff c0
constexpr uint8_t kDebugVector = 1, kBreakpointVector = 3;
// DR7 for breakpoint 0 on instruction fetch: G0 (bit 1), R/W0 = LEN0 = 0,
// plus GE and the reserved-one bit 10, as QEMU's gdbstub sets it.
constexpr uint64_t kDr7Execute0 = 0x602;

// 16 x `inc rax`, then either a jump back to the start or the normal end.
Snippet inc_rax_block(GuestMode mode, bool loop) {
  Snippet code(mode);
  for (int i = 0; i < kIncCount; ++i) code.inc_rax();
  if (loop)
    code.jmp_to(0);
  else
    code.finish();
  return code;
}

void set_guest_debug(ProbeGuest& guest, uint32_t control, uint64_t dr0 = 0, uint64_t dr7 = 0) {
  kvm_guest_debug debug{};
  debug.control = control;
  debug.arch.debugreg[0] = dr0;
  debug.arch.debugreg[7] = dr7;
  guest.vcpu().set_guest_debug(debug);
}

void check_run_error(const RunOutcome& outcome) {
  if (outcome.error != 0)
    throw librr::SystemError(std::string("KVM_RUN: ") + std::strerror(-outcome.error));
}

// Classifies the first exit after a debug exception was due at `expected_rip`.
std::string classify_delivery(ProbeGuest& guest, const RunOutcome& outcome, uint8_t vector,
                              uint64_t expected_rip, int cpl) {
  if (outcome.timed_out) return "none";
  if (outcome.exit_reason == KVM_EXIT_INTERNAL_ERROR) return "internal-error";
  // The guest's stub either reported the vector, or KVM stopped inside it.
  if (guest.reported_exception() == vector || guest.in_exception_handler(vector))
    return "guest-idt";
  const kvm_regs regs = guest.regs();
  const int current_cpl = guest.vcpu().get_sregs().cs.selector & 3;
  if (outcome.exit_reason == KVM_EXIT_DEBUG && current_cpl == cpl &&
      (regs.rip == expected_rip || regs.rip == expected_rip + 1))
    return "kvm-exit";
  return "exit " + exit_reason_name(outcome.exit_reason);
}

// Runs single-step exits for 100 ms (wall clock) and returns steps per
// second of vCPU-thread CPU time; `after_exit` handles each exit.
template <class AfterExit>
double steps_per_second(ProbeGuest& guest, AfterExit after_exit) {
  uint64_t steps = 0;
  const double cpu_start = thread_cpu_seconds();
  guest.interrupter().arm(milliseconds(100));
  while (!guest.interrupter().fired()) {
    const int result = guest.vcpu().run();
    if (result == 0) {
      after_exit();
      ++steps;
    } else if (result != -EINTR) {
      throw librr::SystemError(std::string("KVM_RUN: ") + std::strerror(-result));
    }
  }
  const double seconds = thread_cpu_seconds() - cpu_start;  // per CPU second, as for speed
  guest.interrupter().disarm();
  return static_cast<double>(steps) / seconds;
}

constexpr int kStepsChecked = 8;

// Direct single-step: each KVM_RUN returns after one instruction.
void check_direct_steps(ProbeGuest& guest, uint64_t start, SingleStepCheck& check) {
  check.one_instruction_per_run = true;
  for (int i = 1; i < kStepsChecked; ++i) {
    const RunOutcome outcome = guest.run_once();
    check_run_error(outcome);
    const kvm_regs regs = guest.regs();
    if (outcome.timed_out || outcome.exit_reason != check.exit_reason ||
        regs.rip != start + kIncLength * (i + 1) || regs.rax != static_cast<uint64_t>(i + 1)) {
      check.one_instruction_per_run = false;
      return;
    }
    ++check.steps_checked;
  }
  check.steps_per_second = steps_per_second(guest, [] {});
}

// Single-step caught at the guest's #DB handler: each exit is at the
// handler's first instruction; unwinding returns to the stepped context.
void check_steps_caught_at_handler(GuestMode mode, const Snippet& code, SingleStepCheck& check) {
  ProbeGuest guest;
  guest.load(mode, code.code());
  set_guest_debug(guest, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP,
                  ProbeGuest::exception_handler(kDebugVector), kDr7Execute0);
  const uint64_t start = ProbeGuest::code_address(mode);
  check.steps_checked = 0;
  for (int i = 0; i < kStepsChecked; ++i) {
    const RunOutcome outcome = guest.run_once();
    check_run_error(outcome);
    if (outcome.timed_out || outcome.exit_reason != KVM_EXIT_DEBUG ||
        guest.regs().rip != ProbeGuest::exception_handler(kDebugVector))
      return;
    const uint64_t stepped_to = guest.unwind_exception_frame();
    if (stepped_to != start + kIncLength * (i + 1) ||
        guest.regs().rax != static_cast<uint64_t>(i + 1))
      return;
    ++check.steps_checked;
  }
  check.caught_at_handler = true;
  check.steps_per_second = steps_per_second(guest, [&] { guest.unwind_exception_frame(); });
}

}  // namespace

SingleStepCheck measure_single_step(int cpl) {
  SingleStepCheck check;
  check.cpl = cpl;
  const GuestMode mode = long_mode_for(cpl);
  const Snippet code = inc_rax_block(mode, true);
  const uint64_t start = ProbeGuest::code_address(mode);
  {
    ProbeGuest guest;
    guest.load(mode, code.code());
    set_guest_debug(guest, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
    const RunOutcome first = guest.run_once();
    check_run_error(first);
    check.exit_reason = first.exit_reason;
    check.exit_reason_name = first.timed_out ? "none" : exit_reason_name(first.exit_reason);
    check.delivery = classify_delivery(guest, first, kDebugVector, start + kIncLength, cpl);
    if (check.delivery == "kvm-exit" && guest.regs().rax == 1) {
      check.steps_checked = 1;
      check_direct_steps(guest, start, check);
    }
  }  // one interruptible vCPU per process: this guest goes before the next
  if (check.delivery == "guest-idt") check_steps_caught_at_handler(mode, code, check);
  check.status = "ok";
  return check;
}

HwBreakpointCheck measure_hw_breakpoint(int cpl) {
  HwBreakpointCheck check;
  check.cpl = cpl;
  const GuestMode mode = long_mode_for(cpl);
  const Snippet code = inc_rax_block(mode, true);
  ProbeGuest guest;
  guest.load(mode, code.code());
  const uint64_t breakpoint = ProbeGuest::code_address(mode) + 5 * kIncLength;
  set_guest_debug(guest, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, breakpoint, kDr7Execute0);
  const RunOutcome outcome = guest.run_for(milliseconds(100));
  check_run_error(outcome);
  if (outcome.timed_out) {
    check.outcome = "no exit within 100 ms (the loop ran past the breakpoint)";
  } else {
    const kvm_regs regs = guest.regs();
    check.honoured = outcome.exit_reason == KVM_EXIT_DEBUG && regs.rip == breakpoint;
    check.outcome =
        exit_reason_name(outcome.exit_reason) + " with RIP at breakpoint" +
        (regs.rip >= breakpoint ? "+" : "-") +
        std::to_string(regs.rip >= breakpoint ? regs.rip - breakpoint : breakpoint - regs.rip);
  }
  check.status = "ok";
  return check;
}

SwBreakpointCheck measure_sw_breakpoint(int cpl) {
  SwBreakpointCheck check;
  check.cpl = cpl;
  const GuestMode mode = long_mode_for(cpl);
  Snippet code = inc_rax_block(mode, false);
  // Patch int3 over the first byte of the fifth `inc rax`, as a debugger would.
  constexpr size_t kPatchOffset = 4 * kIncLength;
  const uint8_t original = code.mutable_code()[kPatchOffset];
  code.mutable_code()[kPatchOffset] = 0xcc;
  const uint64_t breakpoint = ProbeGuest::code_address(mode) + kPatchOffset;

  auto guest = std::make_unique<ProbeGuest>();
  guest->load(mode, code.code());
  set_guest_debug(*guest, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP);
  RunOutcome outcome = guest->run_once(milliseconds(100));
  check_run_error(outcome);
  check.exit_reason = outcome.exit_reason;
  check.exit_reason_name = outcome.timed_out ? "none" : exit_reason_name(outcome.exit_reason);
  if (outcome.exit_reason == KVM_EXIT_INTERNAL_ERROR)
    check.internal_error_suberror = guest->run_state()->internal.suberror;
  check.delivery = classify_delivery(*guest, outcome, kBreakpointVector, breakpoint, cpl);

  uint64_t trapped_rip = 0;
  if (check.delivery == "kvm-exit") {
    trapped_rip = guest->regs().rip;
    check.stops = guest->regs().rax == 4;
  } else if (check.delivery == "guest-idt") {
    // Again, with a hardware breakpoint on the guest's #BP handler (one
    // interruptible vCPU per process: the old guest goes first).
    guest.reset();
    guest = std::make_unique<ProbeGuest>();
    guest->load(mode, code.code());
    set_guest_debug(*guest, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP | KVM_GUESTDBG_USE_HW_BP,
                    ProbeGuest::exception_handler(kBreakpointVector), kDr7Execute0);
    outcome = guest->run_once(milliseconds(100));
    check_run_error(outcome);
    if (!outcome.timed_out && outcome.exit_reason == KVM_EXIT_DEBUG &&
        guest->regs().rip == ProbeGuest::exception_handler(kBreakpointVector)) {
      trapped_rip = guest->unwind_exception_frame();
      check.caught_at_handler = true;
      check.stops = guest->regs().rax == 4;
    }
  }
  check.rip_offset = check.stops ? static_cast<int64_t>(trapped_rip - breakpoint) : 0;
  check.stops = check.stops && (check.rip_offset == 0 || check.rip_offset == 1);

  if (check.stops) {
    // Put the byte back, rewind to the breakpoint, run to the end.
    guest->ram()[breakpoint] = original;
    kvm_regs regs = guest->regs();
    regs.rip = breakpoint;
    guest->set_regs(regs);
    set_guest_debug(*guest, 0);
    const RunOutcome rest = guest->run_once(milliseconds(100));
    check_run_error(rest);
    check.resumable = !rest.timed_out && finished_normally(*guest, mode) &&
                      guest->regs().rax == static_cast<uint64_t>(kIncCount);
  }
  check.usable = check.stops && check.resumable;
  check.status = "ok";
  return check;
}

}  // namespace vmm::probe
