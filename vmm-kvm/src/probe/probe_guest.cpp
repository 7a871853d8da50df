#include "probe/probe_guest.h"

#include <time.h>

#include <cerrno>
#include <cstring>

#include "librr/error.h"
#include "replay/guest_handler_step.h"

namespace vmm::probe {
namespace {

constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Mp = 1ull << 1, kCr0Et = 1ull << 4, kCr0Ne = 1ull << 5,
                   kCr0Wp = 1ull << 16, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5, kCr4Osfxsr = 1ull << 9, kCr4Osxmmexcpt = 1ull << 10;
constexpr uint64_t kEferSce = 1ull << 0, kEferLme = 1ull << 8, kEferLma = 1ull << 10;
constexpr uint64_t kRflagsReserved = 1ull << 1;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64, bool big) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = selector & 3;
  s.db = big ? 1 : 0;
  s.s = 1;
  s.l = code64 ? 1 : 0;
  s.g = 1;
  return s;
}
constexpr uint8_t kCodeType = 0xb;  // execute/read, accessed
constexpr uint8_t kDataType = 0x3;  // read/write, accessed

kvm_segment real_mode_segment(uint16_t selector, uint8_t type) {
  kvm_segment s{};
  s.base = uint64_t{selector} << 4;
  s.limit = 0xffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  return s;
}

void put64(uint8_t* at, uint64_t value) { std::memcpy(at, &value, 8); }

}  // namespace

std::string_view mode_name(GuestMode mode) {
  switch (mode) {
    case GuestMode::real16:
      return "real16";
    case GuestMode::protected32:
      return "protected32";
    case GuestMode::long64_cpl0:
      return "long64_cpl0";
    case GuestMode::long64_cpl3:
      return "long64_cpl3";
    case GuestMode::compat32_cpl3:
      return "compat32_cpl3";
  }
  return "?";
}

int mode_cpl(GuestMode mode) {
  return mode == GuestMode::long64_cpl3 || mode == GuestMode::compat32_cpl3 ? 3 : 0;
}

std::string exit_reason_name(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN:
      return "UNKNOWN";
    case KVM_EXIT_EXCEPTION:
      return "EXCEPTION";
    case KVM_EXIT_IO:
      return "IO";
    case KVM_EXIT_HYPERCALL:
      return "HYPERCALL";
    case KVM_EXIT_DEBUG:
      return "DEBUG";
    case KVM_EXIT_HLT:
      return "HLT";
    case KVM_EXIT_MMIO:
      return "MMIO";
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return "IRQ_WINDOW_OPEN";
    case KVM_EXIT_SHUTDOWN:
      return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY:
      return "FAIL_ENTRY";
    case KVM_EXIT_INTR:
      return "INTR";
    case KVM_EXIT_INTERNAL_ERROR:
      return "INTERNAL_ERROR";
    case KVM_EXIT_X86_RDMSR:
      return "X86_RDMSR";
    case KVM_EXIT_X86_WRMSR:
      return "X86_WRMSR";
    default:
      return "exit " + std::to_string(reason);
  }
}

ProbeGuest::ProbeGuest(const ProbeGuestOptions& options) {
  system_ = std::make_unique<kvm::System>();
  vm_ = std::make_unique<kvm::Vm>(system_->create_vm());
  // Intel VMX needs a TSS area for real mode; other backends may refuse the
  // ioctl, which is harmless.
  try {
    vm_->set_tss_addr(0xfffbd000);
  } catch (const librr::SystemError&) {
  }
  ram_ = std::make_unique<kvm::GuestRam>(layout::kRamSize);
  vm_->set_user_memory_region(0, 0, layout::kRamSize, ram_->data());
  if (options.with_logged_slot) {
    logged_ = std::make_unique<kvm::GuestRam>(layout::kLoggedSize);
    vm_->set_user_memory_region(1, layout::kLoggedBase, layout::kLoggedSize, logged_->data(),
                                KVM_MEM_LOG_DIRTY_PAGES);
  }
  vcpu_ = std::make_unique<kvm::Vcpu>(vm_->create_vcpu(0));
  std::vector<kvm_cpuid_entry2> cpuid = system_->supported_cpuid();
  if (options.adjust_cpuid) options.adjust_cpuid(cpuid);
  vcpu_->set_cpuid2(cpuid);
  write_system_tables();
  interrupter_ = std::make_unique<RunInterrupter>(*vcpu_);
}

ProbeGuest::~ProbeGuest() = default;

void ProbeGuest::write_system_tables() {
  uint8_t* ram = ram_->data();
  // GDT: see probe_guest.h selectors.
  uint8_t* gdt = ram + layout::kGdt;
  put64(gdt + 0x08, 0x00af9b000000ffff);  // kernel code, 64-bit
  put64(gdt + 0x10, 0x00cf93000000ffff);  // kernel data
  put64(gdt + 0x18, 0x00cffb000000ffff);  // user code, 32-bit (compat)
  put64(gdt + 0x20, 0x00cff3000000ffff);  // user data
  put64(gdt + 0x28, 0x00affb000000ffff);  // user code, 64-bit
  // 64-bit TSS descriptor (16 bytes), busy, limit 0x67.
  const uint64_t tss = layout::kTss;
  put64(gdt + 0x30,
        0x67 | ((tss & 0xffffff) << 16) | (uint64_t{0x8b} << 40) | ((tss >> 24 & 0xff) << 56));
  put64(gdt + 0x38, tss >> 32);
  put64(gdt + 0x40, 0x00cf9b000000ffff);  // kernel code, 32-bit
  put64(gdt + 0x48, 0x00cf93000000ffff);  // kernel data, 32-bit

  // TSS: RSP0 for exceptions taken from CPL3; I/O bitmap offset past the
  // limit, so CPL3 port access is governed by IOPL alone.
  uint8_t* tss_bytes = ram + layout::kTss;
  put64(tss_bytes + 4, layout::kKernelStackTop);
  const uint16_t iomap = 0x68;
  std::memcpy(tss_bytes + 0x66, &iomap, 2);

  // Exception stubs: mov r15d, vector; out 0xf5, al; hlt; jmp back to hlt.
  // Reporting through r15 leaves rax (often the measured value) intact.
  for (uint8_t vector = 0; vector < 32; ++vector) {
    uint8_t* stub = ram + layout::kExceptionStubs + vector * 16;
    const uint8_t code[] = {0x41, 0xbf, vector, 0, 0, 0, 0xe6, ports::kException & 0xff,
                            0xf4, 0xeb, 0xfd};
    std::memcpy(stub, code, sizeof code);
    // 64-bit interrupt gate; #BP gets DPL3 so int3 at CPL3 reaches it.
    const uint64_t handler = layout::kExceptionStubs + vector * 16;
    const uint64_t type_attr = vector == 3 ? 0xee : 0x8e;
    put64(ram + layout::kIdt + vector * 16,
          (handler & 0xffff) | (uint64_t{selectors::kKernelCode64} << 16) | (type_attr << 40) |
              ((handler >> 16 & 0xffff) << 48));
    put64(ram + layout::kIdt + vector * 16 + 8, handler >> 32);
  }

  // Identity map of the first 1 GiB with 2 MiB pages, user-accessible.
  put64(ram + layout::kPml4, (layout::kPml4 + 0x1000) | 0x7);
  put64(ram + layout::kPml4 + 0x1000, (layout::kPml4 + 0x2000) | 0x7);
  for (uint64_t i = 0; i < 512; ++i) put64(ram + layout::kPml4 + 0x2000 + i * 8, (i << 21) | 0x87);
}

uint64_t ProbeGuest::code_address(GuestMode mode) {
  return mode_cpl(mode) == 3 ? layout::kUserCode : layout::kKernelCode;
}

void ProbeGuest::load(GuestMode mode, std::span<const uint8_t> code) {
  const uint64_t address = code_address(mode);
  if (code.size() > 0x8000) throw librr::Error("probe snippet too large");
  std::memcpy(ram_->data() + address, code.data(), code.size());

  kvm_sregs sregs = vcpu_->get_sregs();
  sregs.gdt.base = layout::kGdt;
  sregs.gdt.limit = 0x4f;
  sregs.idt.base = layout::kIdt;
  sregs.idt.limit = 32 * 16 - 1;
  sregs.tr = kvm_segment{};
  sregs.tr.base = layout::kTss;
  sregs.tr.limit = 0x67;
  sregs.tr.selector = selectors::kTss;
  sregs.tr.type = 11;
  sregs.tr.present = 1;

  kvm_regs regs{};
  regs.rflags = kRflagsReserved;
  regs.rip = address;
  regs.rsp = mode_cpl(mode) == 3 ? layout::kUserStackTop : layout::kKernelStackTop;

  switch (mode) {
    case GuestMode::real16: {
      // CS:IP = 0x1000:0 reaches the kernel code address; real mode needs
      // everything below 1 MiB.
      const uint16_t code_segment = layout::kKernelCode >> 4;
      sregs.cs = real_mode_segment(code_segment, kCodeType);
      sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = real_mode_segment(0, kDataType);
      // Not the reset value (which has CD/NW set): uncached guest memory would
      // make a VT-x host look slow.
      sregs.cr0 = kCr0Et;
      sregs.cr4 = 0;
      sregs.efer = 0;
      regs.rip = 0;
      regs.rsp = 0x7000;
      break;
    }
    case GuestMode::protected32:
      sregs.cs = flat_segment(selectors::kKernelCode32, kCodeType, false, true);
      sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
          flat_segment(selectors::kKernelData32, kDataType, false, true);
      sregs.cr0 = kCr0Pe | kCr0Et | kCr0Ne;
      sregs.cr4 = 0;
      sregs.efer = 0;
      break;
    case GuestMode::long64_cpl0:
    case GuestMode::long64_cpl3:
    case GuestMode::compat32_cpl3: {
      sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
      sregs.cr3 = layout::kPml4;
      sregs.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
      sregs.efer = kEferSce | kEferLme | kEferLma;
      if (mode == GuestMode::long64_cpl0) {
        sregs.cs = flat_segment(selectors::kKernelCode64, kCodeType, true, false);
        sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
            flat_segment(selectors::kKernelData, kDataType, false, true);
      } else {
        sregs.cs = mode == GuestMode::long64_cpl3
                       ? flat_segment(selectors::kUserCode64, kCodeType, true, false)
                       : flat_segment(selectors::kUserCode32, kCodeType, false, true);
        sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
            flat_segment(selectors::kUserData, kDataType, false, true);
      }
      break;
    }
  }
  vcpu_->set_sregs(sregs);
  vcpu_->set_regs(regs);
}

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

RunOutcome ProbeGuest::run_for(std::chrono::microseconds window) {
  RunOutcome outcome;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = thread_cpu_seconds();
  interrupter_->arm(window);
  for (;;) {
    const int result = vcpu_->run();
    if (result == 0) {
      outcome.exit_reason = run_state()->exit_reason;
      break;
    }
    if (result == -EINTR) {
      if (interrupter_->fired()) {
        outcome.timed_out = true;
        break;
      }
      continue;  // a stray signal: keep running
    }
    outcome.error = result;
    break;
  }
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  outcome.cpu_seconds = thread_cpu_seconds() - cpu_start;
  interrupter_->disarm();
  return outcome;
}

bool ProbeGuest::in_exception_handler(uint8_t vector) {
  const uint64_t rip = regs().rip;
  const uint64_t handler = exception_handler(vector);
  return (vcpu_->get_sregs().cs.selector & 3) == 0 && rip >= handler && rip < handler + 16;
}

uint64_t ProbeGuest::unwind_exception_frame() {
  kvm_regs regs = vcpu_->get_regs();
  if (regs.rsp > layout::kRamSize - InterruptFrame::kBytes)
    throw librr::Error("exception frame at RSP " + std::to_string(regs.rsp) + " is outside RAM");
  const InterruptFrame frame =
      InterruptFrame::parse({ram_->data() + regs.rsp, InterruptFrame::kBytes});
  const auto code_selector = static_cast<uint16_t>(frame.cs);
  const auto stack_selector = static_cast<uint16_t>(frame.ss);
  kvm_sregs sregs = vcpu_->get_sregs();
  const bool long_code =
      code_selector == selectors::kKernelCode64 || code_selector == selectors::kUserCode64;
  sregs.cs = flat_segment(code_selector, kCodeType, long_code, !long_code);
  sregs.ss = sregs.ds = sregs.es = flat_segment(stack_selector, kDataType, false, true);
  vcpu_->set_sregs(sregs);
  frame.return_to(regs);
  vcpu_->set_regs(regs);
  return regs.rip;
}

bool ProbeGuest::exited_on_port(uint16_t port) const {
  const kvm_run* run = vcpu_->run_state();
  return run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
         run->io.port == port && run->io.size == 1;
}

std::optional<uint8_t> ProbeGuest::reported_exception() {
  if (!exited_on_port(ports::kException)) return std::nullopt;
  return static_cast<uint8_t>(regs().r15);
}

}  // namespace vmm::probe
