#pragma once
// CPU state at kernel entry: a flat GDT in guest memory, identity page
// tables, and the segment/control registers for 32-bit protected mode (PVH)
// or 64-bit long mode (Linux's 64-bit boot protocol).
#include <linux/kvm.h>

#include <cstdint>

#include "guest_memory.h"
#include "kvm/kvm.h"

namespace vmm::boot {

// Writes the GDT (null, 32-bit code, 64-bit code, data, TSS) and an empty IDT.
void write_gdt(const GuestMemory& memory);
// Identity-maps the first 4 GiB with 2 MiB pages at kPml4Address.
void write_identity_page_tables(const GuestMemory& memory);

// 32-bit flat protected mode, paging off; rip = entry, rbx = `ebx`.
void enter_protected_mode(kvm::Vcpu& vcpu, uint32_t entry, uint32_t ebx);
// 64-bit long mode on the identity map; rip = entry, rsi = `rsi`.
void enter_long_mode(kvm::Vcpu& vcpu, uint64_t entry, uint64_t rsi, uint64_t rsp);

}  // namespace vmm::boot
