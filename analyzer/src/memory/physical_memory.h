#pragma once
// Read-only view of guest-physical memory, whatever holds it: a live replay
// machine, a snapshot loaded into a buffer. Introspection and the debugger
// read through this, so they work the same on every source.
#include <cstdint>
#include <span>
#include <vector>

namespace analyzer {

class PhysicalMemory {
 public:
  virtual ~PhysicalMemory() = default;
  virtual uint64_t size() const = 0;
  // Copies [gpa, gpa + out.size()); false (and nothing promised about `out`)
  // if any byte lies outside guest RAM.
  virtual bool read(uint64_t gpa, std::span<uint8_t> out) const = 0;
};

// Guest RAM held in a host buffer (a mapping of a live machine, or a copy).
class BufferPhysicalMemory final : public PhysicalMemory {
 public:
  explicit BufferPhysicalMemory(std::span<const uint8_t> ram) : ram_(ram) {}
  uint64_t size() const override { return ram_.size(); }
  bool read(uint64_t gpa, std::span<uint8_t> out) const override;

 private:
  std::span<const uint8_t> ram_;
};

}  // namespace analyzer
