#include "machine/bus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "librr/error.h"

namespace vmm {

template <class DeviceT, class Address>
void AddressBus<DeviceT, Address>::add(Address base, Address size, DeviceT& device) {
  if (size == 0) throw librr::Error("bus: empty range for " + std::string(device.name()));
  const uint64_t end = static_cast<uint64_t>(base) + size;
  for (const Range& r : ranges_) {
    const uint64_t r_end = static_cast<uint64_t>(r.base) + r.size;
    if (base < r_end && r.base < end)
      throw librr::Error(fmt::format("bus: {} at {:#x} overlaps {} at {:#x}", device.name(),
                                     static_cast<uint64_t>(base), r.device->name(),
                                     static_cast<uint64_t>(r.base)));
  }
  ranges_.push_back({base, size, &device});
  std::sort(ranges_.begin(), ranges_.end(),
            [](const Range& a, const Range& b) { return a.base < b.base; });
}

template <class DeviceT, class Address>
auto AddressBus<DeviceT, Address>::find(Address address) const -> const Range* {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), address,
                             [](Address a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (static_cast<uint64_t>(address) - it->base < it->size) return &*it;
  return nullptr;
}

template class AddressBus<PioDevice, uint16_t>;
template class AddressBus<MmioDevice, uint64_t>;

bool PioBus::read(uint16_t port, std::span<uint8_t> data) {
  if (const Range* r = find(port)) {
    r->device->pio_read(port, data);
    return true;
  }
  std::fill(data.begin(), data.end(), 0xff);
  return false;
}

bool PioBus::write(uint16_t port, std::span<const uint8_t> data) {
  if (const Range* r = find(port)) {
    r->device->pio_write(port, data);
    return true;
  }
  return false;
}

bool MmioBus::read(uint64_t address, std::span<uint8_t> data) {
  if (const Range* r = find(address)) {
    r->device->mmio_read(address - r->base, data);
    return true;
  }
  std::fill(data.begin(), data.end(), 0);
  return false;
}

bool MmioBus::write(uint64_t address, std::span<const uint8_t> data) {
  if (const Range* r = find(address)) {
    r->device->mmio_write(address - r->base, data);
    return true;
  }
  return false;
}

}  // namespace vmm
