#include "memory/physical_memory.h"

#include <cstring>

namespace analyzer {

bool BufferPhysicalMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  if (gpa > ram_.size() || out.size() > ram_.size() - gpa) return false;
  std::memcpy(out.data(), ram_.data() + gpa, out.size());
  return true;
}

}  // namespace analyzer
