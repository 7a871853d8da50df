#include "boot/layout.h"

namespace vmm::boot {

std::vector<E820Entry> e820_map(uint64_t ram_bytes) {
  return {
      {0, kEbdaStart, kE820Ram},
      {kEbdaStart, kHighMemoryStart - kEbdaStart, kE820Reserved},
      {kHighMemoryStart, ram_bytes - kHighMemoryStart, kE820Ram},
  };
}

}  // namespace vmm::boot
