#pragma once
// A guest virtual address space: x86-64 4-level paging rooted at CR3, with
// 2 MiB and 1 GiB pages (Intel SDM vol. 3, 4.5). Used by the debugger and by
// the OS models to follow kernel and user pointers.
#include <cstdint>
#include <optional>
#include <span>

#include "memory/physical_memory.h"

namespace analyzer {

struct Translation {
  uint64_t physical = 0;
  uint64_t page_size = 0;  // 4 KiB, 2 MiB or 1 GiB
  bool writable = false;
  bool user = false;
};

class AddressSpace {
 public:
  // cr3: the guest's CR3 (flags in the low bits and PCID are ignored).
  // paging_enabled false (CR0.PG clear) makes virtual == physical.
  AddressSpace(const PhysicalMemory& memory, uint64_t cr3, bool paging_enabled = true);

  // nullopt if the address is not canonical, not mapped, or a table lies
  // outside guest RAM.
  std::optional<Translation> translate(uint64_t virtual_address) const;
  // Reads across page boundaries; returns the number of bytes read before the
  // first unmapped byte (out.size() when all were read).
  size_t read(uint64_t virtual_address, std::span<uint8_t> out) const;
  bool read_exact(uint64_t virtual_address, std::span<uint8_t> out) const {
    return read(virtual_address, out) == out.size();
  }
  template <class T>
  std::optional<T> read_obj(uint64_t virtual_address) const {
    T value;
    if (!read_exact(virtual_address, {reinterpret_cast<uint8_t*>(&value), sizeof value}))
      return std::nullopt;
    return value;
  }

  const PhysicalMemory& physical() const { return memory_; }
  uint64_t root() const { return root_; }

 private:
  const PhysicalMemory& memory_;
  uint64_t root_;
  bool paging_enabled_;
};

}  // namespace analyzer
