#include "os/kernel_memory.h"

#include <fmt/format.h>

#include <algorithm>

namespace analyzer {

KernelMemory::KernelMemory(const PhysicalMemory& memory, std::optional<uint64_t> page_table_root,
                           std::vector<LinearMap> linear_maps)
    : memory_(memory), linear_maps_(std::move(linear_maps)) {
  if (page_table_root) paging_.emplace(memory, *page_table_root, true);
}

std::optional<uint64_t> KernelMemory::translate_linear(uint64_t virtual_address) const {
  for (const LinearMap& map : linear_maps_)
    if (virtual_address >= map.virtual_base && virtual_address - map.virtual_base < map.size)
      return map.physical_base + (virtual_address - map.virtual_base);
  return std::nullopt;
}

std::optional<uint64_t> KernelMemory::translate(uint64_t virtual_address) const {
  if (paging_)
    if (auto translation = paging_->translate(virtual_address)) return translation->physical;
  return translate_linear(virtual_address);
}

bool KernelMemory::try_read(uint64_t virtual_address, std::span<uint8_t> out) const {
  // Page by page: consecutive virtual pages need not be physically adjacent.
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t address = virtual_address + done;
    const auto physical = translate(address);
    if (!physical) return false;
    const size_t in_page = std::min<uint64_t>(out.size() - done, 4096 - (address & 4095));
    if (!memory_.read(*physical, out.subspan(done, in_page))) return false;
    done += in_page;
  }
  return true;
}

void KernelMemory::read(uint64_t virtual_address, std::span<uint8_t> out,
                        const std::string& what) const {
  if (!try_read(virtual_address, out))
    throw GuestReadError(
        fmt::format("cannot read {} ({} bytes at guest virtual address {:#x}): "
                    "not mapped or outside guest RAM",
                    what, out.size(), virtual_address));
}

uint64_t KernelMemory::read_unsigned(uint64_t virtual_address, size_t size,
                                     const std::string& what) const {
  if (size == 0 || size > 8)
    throw GuestReadError(fmt::format("{}: integer of {} bytes", what, size));
  uint8_t bytes[8] = {};
  read(virtual_address, {bytes, size}, what);
  uint64_t value = 0;
  for (size_t i = size; i-- > 0;) value = value << 8 | bytes[i];
  return value;
}

std::string KernelMemory::read_c_string(uint64_t virtual_address, size_t max_length,
                                        const std::string& what) const {
  std::string text;
  uint8_t chunk[64];
  while (text.size() < max_length) {
    const size_t want = std::min<size_t>(sizeof chunk, max_length - text.size());
    // Stop at a page end first so a short string at the end of a mapping reads.
    const size_t to_page_end = 4096 - ((virtual_address + text.size()) & 4095);
    const size_t length = std::min(want, to_page_end);
    read(virtual_address + text.size(), {chunk, length}, what);
    for (size_t i = 0; i < length; ++i) {
      if (chunk[i] == 0) return text;
      text.push_back(static_cast<char>(chunk[i]));
    }
  }
  return text;
}

}  // namespace analyzer
