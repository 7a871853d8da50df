#pragma once
// Reads kernel virtual addresses of a guest: through its page tables when it
// has them, else (early boot, or a table lies outside RAM) through the fixed
// linear maps the kernel is known to use (Linux x86_64: the kernel image at
// __START_KERNEL_map and the direct map of all RAM at PAGE_OFFSET).
// Every failed read throws GuestReadError naming the address and the object.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "librr/error.h"
#include "memory/address_space.h"

namespace analyzer {

class GuestReadError : public librr::Error {
 public:
  using librr::Error::Error;
};

struct LinearMap {
  uint64_t virtual_base = 0;
  uint64_t physical_base = 0;
  uint64_t size = 0;
};

class KernelMemory {
 public:
  // page_table_root: a PML4 physical address, or nullopt to use the maps only.
  KernelMemory(const PhysicalMemory& memory, std::optional<uint64_t> page_table_root,
               std::vector<LinearMap> linear_maps);

  const PhysicalMemory& physical() const { return memory_; }
  std::optional<uint64_t> translate(uint64_t virtual_address) const;
  bool try_read(uint64_t virtual_address, std::span<uint8_t> out) const;
  // `what` names the object for the error message ("task_struct.comm of pid 1").
  void read(uint64_t virtual_address, std::span<uint8_t> out, const std::string& what) const;
  uint64_t read_unsigned(uint64_t virtual_address, size_t size, const std::string& what) const;
  uint64_t read_u64(uint64_t virtual_address, const std::string& what) const {
    return read_unsigned(virtual_address, 8, what);
  }
  // Up to max_length bytes, stopping at the first NUL.
  std::string read_c_string(uint64_t virtual_address, size_t max_length,
                            const std::string& what) const;

 private:
  std::optional<uint64_t> translate_linear(uint64_t virtual_address) const;

  const PhysicalMemory& memory_;
  std::optional<AddressSpace> paging_;
  std::vector<LinearMap> linear_maps_;
};

}  // namespace analyzer
