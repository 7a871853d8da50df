#pragma once
// The guest's registers as gdb sees them: the target description
// (qXfer:features:read:target.xml) for i386:x86-64 and the byte layout of
// each register in g/p replies, filled from KVM's register structures.
//
// Layout (register numbers as in the target description):
//   0-15  rax rbx rcx rdx rsi rdi rbp rsp r8-r15   64 bit
//   16    rip, 17 eflags, 18-23 cs ss ds es fs gs (selectors)
//   24-31 st0-st7 (80 bit), 32-39 fctrl fstat ftag fiseg fioff foseg fooff fop
//   40-55 xmm0-xmm15, 56 mxcsr
//   57-58 fs_base gs_base
//   59-64 cr0 cr2 cr3 cr4 cr8 efer (a machine debugger wants the paging state)
// gdb's amd64 code requires the "org.gnu.gdb.i386.core" and ".sse" features
// with exactly these names; the system registers live in a feature of our
// own, which gdb shows as extra registers.
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace analyzer::gdb {

struct MachineRegisters {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
};

inline constexpr int kRegisterCount = 65;

// The complete target.xml document.
const std::string& target_description();

// Little-endian bytes of register `number`, nullopt for an unknown number.
std::optional<std::vector<uint8_t>> register_bytes(const MachineRegisters& machine, int number);
// All registers in order, as the 'g' reply carries them (before hex encoding).
std::vector<uint8_t> all_register_bytes(const MachineRegisters& machine);

// The x87 tag word gdb expects (two bits per physical register) from the
// abridged one-bit-per-register form that FXSAVE and KVM_GET_FPU use.
uint16_t full_x87_tag_word(const kvm_fpu& fpu);

}  // namespace analyzer::gdb
