#pragma once
// Address-range dispatch for port I/O and MMIO exits. Ranges may not overlap;
// lookups are a binary search over ranges sorted by base address.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "devices/device.h"

namespace vmm {

template <class DeviceT, class Address>
class AddressBus {
 public:
  struct Range {
    Address base;
    Address size;
    DeviceT* device;
  };
  // Throws librr::Error naming both devices when the range overlaps another.
  void add(Address base, Address size, DeviceT& device);
  // The range containing `address`, or nullptr.
  const Range* find(Address address) const;
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;
};

class PioBus : public AddressBus<PioDevice, uint16_t> {
 public:
  // Unclaimed reads float high (0xff), as on a PC's ISA bus; unclaimed writes
  // are dropped. Both return false so the caller may count them.
  bool read(uint16_t port, std::span<uint8_t> data);
  bool write(uint16_t port, std::span<const uint8_t> data);
};

class MmioBus : public AddressBus<MmioDevice, uint64_t> {
 public:
  // Device offsets are relative to the range base. Unclaimed reads return 0.
  bool read(uint64_t address, std::span<uint8_t> data);
  bool write(uint64_t address, std::span<const uint8_t> data);
};

}  // namespace vmm
