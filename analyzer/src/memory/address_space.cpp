#include "memory/address_space.h"

#include <algorithm>

namespace analyzer {
namespace {

constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWritable = 1ull << 1;
constexpr uint64_t kUser = 1ull << 2;
constexpr uint64_t kLargePage = 1ull << 7;
// Bits 12..51 of an entry: the next table's (or the page's) physical address.
constexpr uint64_t kAddressMask = 0x000f'ffff'ffff'f000ull;

bool is_canonical(uint64_t address) {
  const uint64_t upper = address >> 47;
  return upper == 0 || upper == 0x1ffff;
}

}  // namespace

AddressSpace::AddressSpace(const PhysicalMemory& memory, uint64_t cr3, bool paging_enabled)
    : memory_(memory), root_(cr3 & kAddressMask), paging_enabled_(paging_enabled) {}

std::optional<Translation> AddressSpace::translate(uint64_t virtual_address) const {
  if (!paging_enabled_) {
    if (virtual_address >= memory_.size()) return std::nullopt;
    return Translation{virtual_address, 4096, true, true};
  }
  if (!is_canonical(virtual_address)) return std::nullopt;
  uint64_t table = root_;
  bool writable = true, user = true;
  // Levels PML4 (shift 39), PDPT (30), PD (21), PT (12).
  for (int shift = 39; shift >= 12; shift -= 9) {
    const uint64_t index = (virtual_address >> shift) & 0x1ff;
    uint64_t entry = 0;
    if (!memory_.read(table + index * 8, {reinterpret_cast<uint8_t*>(&entry), sizeof entry}))
      return std::nullopt;
    if (!(entry & kPresent)) return std::nullopt;
    writable = writable && (entry & kWritable);
    user = user && (entry & kUser);
    const bool leaf = shift == 12 || ((shift == 30 || shift == 21) && (entry & kLargePage));
    if (leaf) {
      const uint64_t page_size = 1ull << shift;
      const uint64_t base = entry & kAddressMask & ~(page_size - 1);
      return Translation{base | (virtual_address & (page_size - 1)), page_size, writable, user};
    }
    table = entry & kAddressMask;
  }
  return std::nullopt;  // not reached: the 4 KiB level is always a leaf
}

size_t AddressSpace::read(uint64_t virtual_address, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t address = virtual_address + done;
    const auto translation = translate(address);
    if (!translation) break;
    const uint64_t in_page = translation->page_size - (address & (translation->page_size - 1));
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(in_page, out.size() - done));
    if (!memory_.read(translation->physical, out.subspan(done, chunk))) break;
    done += chunk;
  }
  return done;
}

}  // namespace analyzer
