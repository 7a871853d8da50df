#include "replay/saved_pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "librr/error.h"
#include "replay/memory_shadow.h"

namespace vmm {

SavedPages::SavedPages(const GuestMemory& memory, const std::vector<uint64_t>& gfns)
    : memory_(memory) {
  for (const uint64_t gfn : gfns) {
    const uint8_t* page = at(gfn);
    pages_.emplace_back(gfn, std::vector<uint8_t>(page, page + MemoryShadow::kPageSize));
  }
  std::sort(pages_.begin(), pages_.end());
}

bool SavedPages::equal_to_guest() const {
  for (const auto& [gfn, bytes] : pages_)
    if (std::memcmp(at(gfn), bytes.data(), bytes.size()) != 0) return false;
  return true;
}

void SavedPages::restore_guest() const {
  for (const auto& [gfn, bytes] : pages_) std::memcpy(at(gfn), bytes.data(), bytes.size());
}

std::span<const uint8_t> SavedPages::page(uint64_t gfn) const {
  const auto it =
      std::lower_bound(pages_.begin(), pages_.end(), gfn,
                       [](const auto& saved, uint64_t key) { return saved.first < key; });
  if (it == pages_.end() || it->first != gfn) return {};
  return it->second;
}

uint8_t* SavedPages::at(uint64_t gfn) const {
  uint8_t* page = memory_.translate(gfn * MemoryShadow::kPageSize, MemoryShadow::kPageSize);
  if (!page)
    throw librr::Error(fmt::format(
        "record: page {:#x}, written since the previous position, lies outside guest memory", gfn));
  return page;
}

}  // namespace vmm
