#include "replay/memory_shadow.h"

#include <bit>
#include <cstring>
#include <string>
#include <utility>

#include "librr/error.h"

namespace vmm {

void DirtyPages::merge(const std::vector<uint64_t>& kvm_bitmap) {
  const size_t n = std::min(bits_.size(), kvm_bitmap.size());
  for (size_t i = 0; i < n; ++i) bits_[i] |= kvm_bitmap[i];
}

std::vector<uint64_t> DirtyPages::take() {
  std::vector<uint64_t> gfns;
  for (size_t word = 0; word < bits_.size(); ++word) {
    uint64_t bits = std::exchange(bits_[word], 0);
    while (bits) {
      gfns.push_back(word * 64 + std::countr_zero(bits));
      bits &= bits - 1;
    }
  }
  return gfns;
}

MemoryShadow::MemoryShadow(GuestMemory memory)
    : memory_(memory), shadow_(memory.host_base(), memory.host_base() + memory.size()) {}

librr::MemoryDelta MemoryShadow::capture(uint64_t reset_landmark,
                                         const std::vector<uint64_t>& dirty_gfns) {
  std::vector<librr::PageChange> changes;
  changes.reserve(dirty_gfns.size());
  for (uint64_t gfn : dirty_gfns) {
    const uint8_t* current = memory_.translate(gfn * kPageSize, kPageSize);
    if (!current) continue;  // KVM reports only RAM pages; be defensive anyway
    changes.push_back({gfn, {shadow_.data() + gfn * kPageSize, kPageSize}, {current, kPageSize}});
  }
  // Every written page is listed, even one written back to its old value:
  // replay may hold an intermediate value from the re-executed part.
  librr::MemoryDelta delta =
      librr::make_memory_delta(reset_landmark, changes, librr::UnchangedPages::kKeep);
  for (const librr::PageDelta& page : delta.pages)
    std::memcpy(shadow_.data() + page.gfn * kPageSize,
                memory_.translate(page.gfn * kPageSize, kPageSize), kPageSize);
  return delta;
}

void MemoryShadow::apply(const librr::MemoryDelta& delta) {
  for (const librr::PageDelta& page : delta.pages) {
    uint8_t* guest = page.gfn < (uint64_t{1} << 40)
                         ? memory_.translate(page.gfn * kPageSize, kPageSize)
                         : nullptr;
    if (!guest)
      throw librr::FormatError("memory delta names page " + std::to_string(page.gfn) +
                               ", outside guest memory of " + std::to_string(memory_.size()) +
                               " bytes");
    std::span<uint8_t> shadow_page(shadow_.data() + page.gfn * kPageSize, kPageSize);
    librr::apply_page_delta(page, shadow_page);
    std::memcpy(guest, shadow_page.data(), kPageSize);
  }
}

}  // namespace vmm
