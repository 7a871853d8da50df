#pragma once
// A throw-away virtual machine for one probe measurement: a few MiB of RAM
// holding a GDT, a 64-bit IDT whose handlers report the vector on a port, a
// TSS, identity page tables, and the machine code under test. The vCPU is put
// straight into the requested mode with KVM_SET_SREGS, so each measurement
// starts in a known state without a boot path that could itself fail.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "kvm/kvm.h"
#include "probe/run_interrupter.h"

namespace vmm::probe {

enum class GuestMode { real16, protected32, long64_cpl0, long64_cpl3, compat32_cpl3 };

std::string_view mode_name(GuestMode mode);
int mode_cpl(GuestMode mode);

// Guest-physical layout shared by the guest builder and the snippets.
namespace layout {
inline constexpr uint64_t kGdt = 0x1000;
inline constexpr uint64_t kIdt = 0x2000;
inline constexpr uint64_t kTss = 0x3000;
inline constexpr uint64_t kExceptionStubs = 0x4000;  // 32 stubs of 16 bytes
inline constexpr uint64_t kPml4 = 0x5000;
inline constexpr uint64_t kKernelCode = 0x10000;
inline constexpr uint64_t kSyscallHandler = 0x18000;
inline constexpr uint64_t kUserCode = 0x20000;
inline constexpr uint64_t kKernelStackTop = 0x38000;
inline constexpr uint64_t kUserStackTop = 0x40000;
inline constexpr uint64_t kRamSize = 4 << 20;
// Optional second memory slot with dirty logging, right after RAM.
inline constexpr uint64_t kLoggedBase = kRamSize;
inline constexpr uint64_t kLoggedSize = 16 * 4096;
}  // namespace layout

// Ports the probe snippets use.
namespace ports {
inline constexpr uint16_t kDone = 0xf4;       // CPL0 snippet finished
inline constexpr uint16_t kException = 0xf5;  // IDT stub: vector is in r15
inline constexpr uint16_t kTick = 0xf6;       // PIO round-trip loop
}  // namespace ports

// GDT selectors (Linux's layout, so that SYSCALL/SYSRET selectors line up).
namespace selectors {
inline constexpr uint16_t kKernelCode64 = 0x08;
inline constexpr uint16_t kKernelData = 0x10;
inline constexpr uint16_t kUserCode32 = 0x1b;
inline constexpr uint16_t kUserData = 0x23;
inline constexpr uint16_t kUserCode64 = 0x2b;
inline constexpr uint16_t kTss = 0x30;
inline constexpr uint16_t kKernelCode32 = 0x40;
inline constexpr uint16_t kKernelData32 = 0x48;
}  // namespace selectors

struct ProbeGuestOptions {
  bool with_logged_slot = false;
  // Edits the CPUID table handed to KVM_SET_CPUID2 (KVM wants one before
  // long mode can be entered: EFER.LME is checked against the guest's CPUID).
  std::function<void(std::vector<kvm_cpuid_entry2>&)> adjust_cpuid;
};

// CPU time consumed by the calling thread. Guest execution and KVM's
// instruction emulator both run on the vCPU thread, so rates per CPU second
// do not depend on how loaded the host is (two shared cores here).
double thread_cpu_seconds();

// Outcome of one bounded run.
struct RunOutcome {
  bool timed_out = false;  // the window passed (or the stop signal came) before an exit
  int error = 0;           // -errno from KVM_RUN other than EINTR, else 0
  uint32_t exit_reason = 0;
  double seconds = 0;      // wall clock
  double cpu_seconds = 0;  // vCPU thread CPU time
};

std::string exit_reason_name(uint32_t reason);

class ProbeGuest {
 public:
  explicit ProbeGuest(const ProbeGuestOptions& options = {});
  ~ProbeGuest();

  // Copies `code` to the mode's code address and enters `mode` there with
  // zeroed general registers (IF=0, so nothing interrupts the snippet).
  void load(GuestMode mode, std::span<const uint8_t> code);
  static uint64_t code_address(GuestMode mode);

  // Runs until KVM reports an exit, or until `window` elapses (timed_out).
  // EINTR from a stray signal is retried; the interrupter is disarmed after.
  RunOutcome run_for(std::chrono::microseconds window);
  // Runs to the next exit where one is expected at once (a step, a
  // breakpoint, the end of a short snippet); `guard` only bounds the wait
  // so that a host that never exits cannot hang the measurement.
  RunOutcome run_once(std::chrono::microseconds guard = std::chrono::milliseconds(200)) {
    return run_for(guard);
  }

  kvm::Vcpu& vcpu() { return *vcpu_; }
  kvm::Vm& vm() { return *vm_; }
  kvm::System& system() { return *system_; }
  RunInterrupter& interrupter() { return *interrupter_; }
  kvm_run* run_state() { return vcpu_->run_state(); }
  uint8_t* ram() { return ram_->data(); }
  uint8_t* logged_ram() { return logged_ ? logged_->data() : nullptr; }
  kvm_regs regs() const { return vcpu_->get_regs(); }
  void set_regs(const kvm_regs& regs) { vcpu_->set_regs(regs); }

  // Guest-physical (= virtual) address of the IDT stub for `vector`.
  static uint64_t exception_handler(uint8_t vector) {
    return layout::kExceptionStubs + uint64_t{vector} * 16;
  }
  // True if the vCPU is at CPL0 inside the IDT stub for `vector`.
  bool in_exception_handler(uint8_t vector);
  // What the VMM does after catching an exception at its handler's first
  // instruction: pop the 64-bit interrupt frame (no error code) and restore
  // RIP, RFLAGS, RSP, CS and SS of the interrupted context, as IRETQ would.
  // Returns the interrupted RIP.
  uint64_t unwind_exception_frame();

  // After a KVM_EXIT_IO on ports::kException: the vector the stub reported.
  std::optional<uint8_t> reported_exception();
  // True if the last exit was a 1-byte OUT to `port`.
  bool exited_on_port(uint16_t port) const;

 private:
  void write_system_tables();

  std::unique_ptr<kvm::System> system_;
  std::unique_ptr<kvm::Vm> vm_;
  std::unique_ptr<kvm::GuestRam> ram_;
  std::unique_ptr<kvm::GuestRam> logged_;
  std::unique_ptr<kvm::Vcpu> vcpu_;
  std::unique_ptr<RunInterrupter> interrupter_;
};

}  // namespace vmm::probe
