// The edges of a single step that decide whether a stepper can be exact
// (docs/analyzer.md, "Single steps"): the return from CPL0 to CPL3, the
// trap flag the host sets for the step showing up in what the CPU stores,
// and rep-string instructions. CPL3 steps are taken the way the stepper
// takes them here: with a hardware breakpoint on the guest's #DB handler
// where the host delivers the step's #DB to the guest.
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "librr/error.h"
#include "probe/measurements.h"
#include "probe/snippet.h"

namespace vmm::probe {
namespace {

constexpr uint64_t kTrapFlag = 1ull << 8, kInterruptFlag = 1ull << 9;
constexpr uint8_t kDebugVector = 1;
constexpr uint8_t kProbeInterruptVector = 20;  // has an IDT stub; nothing else raises it
constexpr uint64_t kDr7Execute0 = 0x602;       // as in measure_debug.cpp
constexpr uint64_t kRepCount = 5;

uint64_t load_u64(const uint8_t* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

// Single steps; at CPL3 the #DB is caught at the guest's handler, then the
// frame unwound (the probe guest's handler stubs use no IST).
void enable_steps(ProbeGuest& guest) {
  kvm_guest_debug debug{};
  debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP;
  debug.arch.debugreg[0] = ProbeGuest::exception_handler(kDebugVector);
  debug.arch.debugreg[7] = kDr7Execute0;
  guest.vcpu().set_guest_debug(debug);
}

void step(ProbeGuest& guest) {
  const RunOutcome outcome = guest.run_once();
  if (outcome.error != 0)
    throw librr::SystemError(std::string("KVM_RUN: ") + std::strerror(-outcome.error));
  if (outcome.timed_out) throw librr::Error("a single step did not come back within 200 ms");
  if (guest.regs().rip == ProbeGuest::exception_handler(kDebugVector)) {
    guest.unwind_exception_frame();
    kvm_regs regs = guest.regs();
    regs.rflags &= ~kTrapFlag;  // the frame holds the TF of the step
    guest.set_regs(regs);
    enable_steps(guest);  // re-arms TF at the new rip
  }
}

// At CPL0: builds an iretq frame to user code `inc rax; inc rax; ud2` and
// steps over the iretq once. rax counts the user instructions that ran.
void measure_return_to_user(StepEdgesCheck& check) {
  ProbeGuest guest;
  const uint8_t user[] = {0x48, 0xff, 0xc0, 0x48, 0xff, 0xc0, 0x0f, 0x0b};
  std::memcpy(guest.ram() + layout::kUserCode, user, sizeof user);
  Snippet code(GuestMode::long64_cpl0);
  code.bytes({0x6a, selectors::kUserData});       // push ss
  code.bytes({0x68}).u32(layout::kUserStackTop);  // push rsp
  code.bytes({0x68}).u32(0x202);                  // push rflags (IF)
  code.bytes({0x6a, selectors::kUserCode64});     // push cs
  code.bytes({0x68}).u32(layout::kUserCode);      // push rip
  const uint64_t iretq = code.address();
  code.bytes({0x48, 0xcf});  // iretq
  guest.load(GuestMode::long64_cpl0, code.code());
  enable_steps(guest);
  while (guest.regs().rip != iretq) step(guest);
  step(guest);
  const kvm_regs regs = guest.regs();
  const bool stopped_after_iretq = (guest.vcpu().get_sregs().cs.selector & 3) == 3 &&
                                   regs.rip == layout::kUserCode && regs.rax == 0;
  check.iretq_step_runs_user_code = !stopped_after_iretq;
  check.user_instructions_run = regs.rax;
}

// An interrupt injected before a step: the RFLAGS image in its frame.
bool trap_flag_in_event_frame(GuestMode mode) {
  ProbeGuest guest;
  Snippet code(mode);
  code.inc_rax().inc_rax().finish();
  guest.load(mode, code.code());
  kvm_regs regs = guest.regs();
  regs.rflags |= kInterruptFlag;
  guest.set_regs(regs);
  kvm_interrupt interrupt{kProbeInterruptVector};
  if (::ioctl(guest.vcpu().fd(), KVM_INTERRUPT, &interrupt) != 0)
    throw librr::SystemError(std::string("KVM_INTERRUPT: ") + std::strerror(errno));
  enable_steps(guest);
  const RunOutcome outcome = guest.run_once();
  if (outcome.timed_out || outcome.error != 0)
    throw librr::Error("the step delivering an interrupt did not come back");
  // The stub for the vector runs at CPL0 on the stack below kKernelStackTop
  // (from CPL3) or below the snippet's stack (CPL0): the same top here.
  const uint8_t* frame = guest.ram() + layout::kKernelStackTop - 5 * 8;
  return load_u64(frame + 2 * 8) & kTrapFlag;
}

bool trap_flag_in_pushf_cpl3() {
  ProbeGuest guest;
  Snippet code(GuestMode::long64_cpl3);
  code.bytes({0x9c, 0x58}).finish();  // pushfq; pop rax
  guest.load(GuestMode::long64_cpl3, code.code());
  enable_steps(guest);
  step(guest);
  step(guest);
  return guest.regs().rax & kTrapFlag;
}

int rep_steps(GuestMode mode) {
  ProbeGuest guest;
  Snippet code(mode);
  code.bytes({0x48, 0xc7, 0xc1}).u32(kRepCount);  // mov rcx, 5
  code.bytes({0x48, 0xc7, 0xc7}).u32(0x30000);    // mov rdi, 0x30000 (free RAM)
  const uint64_t rep = code.address();
  code.bytes({0xf3, 0xaa});  // rep stosb
  code.inc_rax().finish();
  guest.load(mode, code.code());
  enable_steps(guest);
  while (guest.regs().rip != rep) step(guest);
  int steps = 0;
  while (guest.regs().rip == rep && steps < 100) {
    step(guest);
    ++steps;
  }
  return steps;
}

}  // namespace

StepEdgesCheck measure_step_edges() {
  StepEdgesCheck check;
  // One interruptible vCPU per process: each measurement's guest goes
  // before the next is made.
  measure_return_to_user(check);
  check.trap_flag_in_event_frame_cpl0 = trap_flag_in_event_frame(GuestMode::long64_cpl0);
  check.trap_flag_in_event_frame_cpl3 = trap_flag_in_event_frame(GuestMode::long64_cpl3);
  check.trap_flag_in_pushf_cpl3 = trap_flag_in_pushf_cpl3();
  check.rep_steps_cpl0 = rep_steps(GuestMode::long64_cpl0);
  check.rep_steps_cpl3 = rep_steps(GuestMode::long64_cpl3);
  check.status = "ok";
  return check;
}

}  // namespace vmm::probe
