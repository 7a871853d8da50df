// Guest-visible features the VMM relies on: dirty-page logging, control of
// guest CPUID, and the two ways a CPL3 program can enter its kernel.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "librr/error.h"
#include "probe/measurements.h"
#include "probe/snippet.h"

namespace vmm::probe {
namespace {

using std::chrono::milliseconds;

void check_run(const RunOutcome& outcome, const char* what) {
  if (outcome.error != 0)
    throw librr::SystemError(std::string(what) + ": KVM_RUN: " + std::strerror(-outcome.error));
  if (outcome.timed_out) throw librr::Error(std::string(what) + ": no exit within the time limit");
}

// "EBX ECX EDX" of a CPUID leaf as the 12 characters they spell.
std::string signature(uint32_t ebx, uint32_t ecx, uint32_t edx) {
  std::string text;
  for (uint32_t word : {ebx, ecx, edx})
    for (int i = 0; i < 4; ++i) {
      const char c = static_cast<char>(word >> (8 * i));
      text.push_back(c >= 0x20 && c < 0x7f ? c : '.');
    }
  return text;
}

constexpr uint32_t kHypervisorLeaf = 0x40000000;
// "rrprobe-cpid", deliberately unlike any real hypervisor's signature.
constexpr uint32_t kSignatureEbx = 0x72707272, kSignatureEcx = 0x2d65626f,
                   kSignatureEdx = 0x64697063;

constexpr uint32_t kHypervisorPresentBit = 1u << 31;

constexpr uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrSfmask = 0xc0000084;

}  // namespace

DirtyLogCheck measure_dirty_log(int cpl) {
  DirtyLogCheck check;
  check.cpl = cpl;
  check.pages_written = {3, 11};
  const GuestMode mode = long_mode_for(cpl);
  Snippet code(mode);
  for (int page : check.pages_written)  // mov [moffs64], rax
    code.bytes({0x48, 0xa3}).u64(layout::kLoggedBase + static_cast<uint64_t>(page) * 4096 + 8);
  code.finish();

  ProbeGuestOptions options;
  options.with_logged_slot = true;
  ProbeGuest guest(options);
  guest.load(mode, code.code());
  guest.vm().get_dirty_log(1, layout::kLoggedSize);  // start from a clean log
  check_run(guest.run_once(), "dirty-log writer");
  if (!finished_normally(guest, mode))
    throw librr::Error("dirty-log writer ended with exit " +
                       exit_reason_name(guest.run_state()->exit_reason));
  const std::vector<uint64_t> bitmap = guest.vm().get_dirty_log(1, layout::kLoggedSize);
  for (int page = 0; page < static_cast<int>(layout::kLoggedSize / 4096); ++page)
    if (bitmap[page / 64] >> (page % 64) & 1) check.pages_reported.push_back(page);
  check.works = check.pages_reported == check.pages_written;
  check.status = "ok";
  return check;
}

CpuidCheck measure_cpuid() {
  // Two edits to the table given to KVM_SET_CPUID2: a made-up hypervisor
  // signature (leaf 0x40000000) and a hidden feature bit (leaf 1 ECX[31]).
  CpuidCheck check;
  check.signature_set = signature(kSignatureEbx, kSignatureEcx, kSignatureEdx);
  ProbeGuestOptions options;
  options.adjust_cpuid = [](std::vector<kvm_cpuid_entry2>& entries) {
    kvm_cpuid_entry2* leaf = nullptr;
    for (auto& entry : entries) {
      if (entry.function == kHypervisorLeaf) leaf = &entry;
      if (entry.function == 1) entry.ecx &= ~kHypervisorPresentBit;
    }
    if (leaf == nullptr) {
      entries.push_back(kvm_cpuid_entry2{});
      leaf = &entries.back();
      leaf->function = kHypervisorLeaf;
      leaf->eax = kHypervisorLeaf;
    }
    leaf->ebx = kSignatureEbx;
    leaf->ecx = kSignatureEcx;
    leaf->edx = kSignatureEdx;
  };
  ProbeGuest guest(options);
  for (int cpl : {0, 3}) {
    const GuestMode mode = long_mode_for(cpl);
    Snippet code(mode);
    code.bytes({0xb8}).u32(kHypervisorLeaf);  // mov eax, 0x40000000
    code.bytes({0x31, 0xc9, 0x0f, 0xa2});     // xor ecx, ecx; cpuid
    code.bytes({0x41, 0x89, 0xd8});           // mov r8d, ebx
    code.bytes({0x41, 0x89, 0xc9});           // mov r9d, ecx
    code.bytes({0x41, 0x89, 0xd2});           // mov r10d, edx
    code.bytes({0xb8}).u32(1);                // mov eax, 1
    code.bytes({0x31, 0xc9, 0x0f, 0xa2});     // xor ecx, ecx; cpuid
    code.bytes({0x41, 0x89, 0xcb});           // mov r11d, ecx
    code.finish();
    guest.load(mode, code.code());
    check_run(guest.run_once(), "cpuid snippet");
    if (!finished_normally(guest, mode))
      throw librr::Error("cpuid snippet ended with exit " +
                         exit_reason_name(guest.run_state()->exit_reason));
    const kvm_regs regs = guest.regs();
    const std::string seen =
        signature(static_cast<uint32_t>(regs.r8), static_cast<uint32_t>(regs.r9),
                  static_cast<uint32_t>(regs.r10));
    const bool hidden = (regs.r11 & kHypervisorPresentBit) == 0;
    (cpl == 0 ? check.signature_seen_cpl0 : check.signature_seen_cpl3) = seen;
    (cpl == 0 ? check.feature_hidden_cpl0 : check.feature_hidden_cpl3) = hidden;
  }
  check.takes_effect = check.signature_seen_cpl0 == check.signature_set &&
                       check.signature_seen_cpl3 == check.signature_set &&
                       check.feature_hidden_cpl0 && check.feature_hidden_cpl3;
  check.status = "ok";
  return check;
}

SyscallCheck measure_syscall() {
  SyscallCheck check;
  const GuestMode mode = GuestMode::long64_cpl3;
  Snippet user(mode);
  user.bytes({0x0f, 0x05}).finish();  // syscall; ud2 (if it ever returns)
  ProbeGuest guest;
  guest.load(mode, user.code());
  // LSTAR handler: mov eax, cs; out 0xf4, al; hlt. The OUT only succeeds at CPL0.
  const uint8_t handler[] = {0x8c, 0xc8, 0xe6, ports::kDone, 0xf4};
  std::memcpy(guest.ram() + layout::kSyscallHandler, handler, sizeof handler);
  const kvm_msr_entry msrs[] = {
      {kMsrStar, 0, (uint64_t{0x18} << 48) | (uint64_t{selectors::kKernelCode64} << 32)},
      {kMsrLstar, 0, layout::kSyscallHandler},
      {kMsrSfmask, 0, 0x700},  // clear TF, IF, DF on entry
  };
  guest.vcpu().set_msrs(msrs);
  check_run(guest.run_once(), "syscall snippet");

  const kvm_regs regs = guest.regs();
  const std::optional<uint8_t> vector = guest.reported_exception();
  if (guest.exited_on_port(ports::kDone)) {
    check.handler_cs = regs.rax & 0xffff;
    check.reaches_cpl0 = (check.handler_cs & 3) == 0;
    check.outcome = fmt::format("LSTAR handler ran with CS={:#x}", check.handler_cs);
  } else if (vector == 13 && (regs.rax & 0xffff) != 0) {
    check.handler_cs = regs.rax & 0xffff;
    check.outcome =
        fmt::format("LSTAR handler ran at CPL3 (CS={:#x}), its OUT raised #GP", check.handler_cs);
  } else if (vector) {
    check.outcome = "syscall raised exception " + std::to_string(*vector);
  } else {
    check.outcome = "exit " + exit_reason_name(guest.run_state()->exit_reason);
  }
  check.status = "ok";
  return check;
}

ExceptionCheck measure_ud2_exception() {
  ExceptionCheck check;
  const GuestMode mode = GuestMode::long64_cpl3;
  Snippet user(mode);
  user.bytes({0x0f, 0x0b});  // ud2: the test guests' system-call instruction
  ProbeGuest guest;
  guest.load(mode, user.code());
  check_run(guest.run_once(), "ud2 snippet");
  if (const std::optional<uint8_t> vector = guest.reported_exception()) {
    check.vector = *vector;
    check.handler_cs = guest.vcpu().get_sregs().cs.selector;
    check.reaches_cpl0 = check.vector == 6 && (check.handler_cs & 3) == 0;
  }
  check.status = "ok";
  return check;
}

}  // namespace vmm::probe
