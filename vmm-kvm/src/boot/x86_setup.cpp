#include "boot/x86_setup.h"

#include "boot/layout.h"
#include "librr/error.h"

namespace vmm::boot {
namespace {
constexpr uint64_t kCr0ProtectionEnable = 1ull << 0;
constexpr uint64_t kCr0ExtensionType = 1ull << 4;
constexpr uint64_t kCr0NumericError = 1ull << 5;
constexpr uint64_t kCr0Paging = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kPagePresentWritable = 0x3;
constexpr uint64_t kPageHuge = 0x80;

// Descriptor fields, the way kvm_segment spells them.
kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code64 ? 0 : 1;
  s.s = 1;
  s.l = code64 ? 1 : 0;
  s.g = 1;
  return s;
}

kvm_segment task_segment() {
  kvm_segment s{};
  s.selector = kTssSelector;
  s.limit = 0x67;
  s.type = 0xb;  // busy 32/64-bit TSS
  s.present = 1;
  return s;
}

void write_u64(const GuestMemory& memory, uint64_t address, uint64_t value) {
  if (!memory.write_obj(address, value))
    throw librr::Error("boot: guest RAM too small for boot structures");
}

void set_common(kvm_sregs& sregs, bool long_mode) {
  const kvm_segment data = flat_segment(kDataSelector, 0x3, false);
  sregs.cs = long_mode ? flat_segment(kCode64Selector, 0xb, true)
                       : flat_segment(kCode32Selector, 0xb, false);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = task_segment();
  sregs.gdt.base = kGdtAddress;
  sregs.gdt.limit = 5 * 8 - 1;
  sregs.idt.base = kIdtAddress;
  sregs.idt.limit = 0;
}
}  // namespace

void write_gdt(const GuestMemory& memory) {
  const uint64_t entries[] = {
      0,                      // null
      0x00cf9b000000ffffull,  // 0x08: 32-bit code, flat
      0x00af9b000000ffffull,  // 0x10: 64-bit code
      0x00cf93000000ffffull,  // 0x18: data, flat
      0x00008b0000000067ull,  // 0x20: TSS (base 0)
  };
  for (size_t i = 0; i < 5; ++i) write_u64(memory, kGdtAddress + i * 8, entries[i]);
  write_u64(memory, kIdtAddress, 0);
}

void write_identity_page_tables(const GuestMemory& memory) {
  write_u64(memory, kPml4Address, kPdptAddress | kPagePresentWritable);
  for (uint64_t gib = 0; gib < 4; ++gib) {
    const uint64_t directory = kPageDirectoriesAddress + gib * 0x1000;
    write_u64(memory, kPdptAddress + gib * 8, directory | kPagePresentWritable);
    for (uint64_t i = 0; i < 512; ++i) {
      const uint64_t physical = (gib << 30) | (i << 21);
      write_u64(memory, directory + i * 8, physical | kPagePresentWritable | kPageHuge);
    }
  }
}

void enter_protected_mode(kvm::Vcpu& vcpu, uint32_t entry, uint32_t ebx) {
  kvm_sregs sregs = vcpu.get_sregs();
  set_common(sregs, false);
  sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType | kCr0NumericError;
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
  vcpu.set_sregs(sregs);

  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = entry;
  regs.rbx = ebx;
  vcpu.set_regs(regs);
}

void enter_long_mode(kvm::Vcpu& vcpu, uint64_t entry, uint64_t rsi, uint64_t rsp) {
  kvm_sregs sregs = vcpu.get_sregs();
  set_common(sregs, true);
  sregs.cr0 = kCr0ProtectionEnable | kCr0ExtensionType | kCr0NumericError | kCr0Paging;
  sregs.cr3 = kPml4Address;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
  vcpu.set_sregs(sregs);

  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = entry;
  regs.rsi = rsi;
  regs.rsp = rsp;
  regs.rbp = rsp;
  vcpu.set_regs(regs);
}

}  // namespace vmm::boot
