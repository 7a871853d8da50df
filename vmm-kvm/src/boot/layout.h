#pragma once
// Where the boot loaders put things in guest physical memory (below 1 MiB,
// the conventional-memory area no kernel image uses), and the e820 map they
// hand to the guest.
#include <cstdint>
#include <vector>

namespace vmm::boot {

constexpr uint64_t kGdtAddress = 0x500;
constexpr uint64_t kIdtAddress = 0x520;
constexpr uint64_t kStartInfoAddress = 0x6000;  // PVH hvm_start_info
constexpr uint64_t kModlistAddress = 0x6100;    // PVH module list (initrd)
constexpr uint64_t kMemmapAddress = 0x7000;     // PVH e820-style memory map
constexpr uint64_t kZeroPageAddress = 0x7000;   // Linux boot_params
constexpr uint64_t kBootStackTop = 0x8ff0;      // Linux 64-bit entry stack
constexpr uint64_t kPml4Address = 0x9000;
constexpr uint64_t kPdptAddress = 0xa000;
constexpr uint64_t kPageDirectoriesAddress = 0xb000;  // 4 pages: 4 GiB of 2 MiB pages
constexpr uint64_t kCmdlineAddress = 0x20000;
constexpr uint64_t kCmdlineMaxBytes = 0x10000;
constexpr uint64_t kEbdaStart = 0x9fc00;         // RAM below this is usable
constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB

// GDT selectors (same table for both protocols; Linux's 64-bit boot
// protocol requires __BOOT_CS = 0x10 and __BOOT_DS = 0x18).
constexpr uint16_t kCode32Selector = 0x08;
constexpr uint16_t kCode64Selector = 0x10;
constexpr uint16_t kDataSelector = 0x18;
constexpr uint16_t kTssSelector = 0x20;

struct E820Entry {
  uint64_t address;
  uint64_t size;
  uint32_t type;  // 1 = RAM, 2 = reserved
};
constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;

// RAM below the EBDA, the BIOS hole as reserved, then RAM from 1 MiB.
std::vector<E820Entry> e820_map(uint64_t ram_bytes);

}  // namespace vmm::boot
