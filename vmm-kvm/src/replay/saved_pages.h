#pragma once
// Copies of guest pages, to compare with guest memory or put back: the
// recorder's re-runs of a stretch (searched_by_rerun,
// delta_from_return_to_user) keep the pages as the first run left them.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "guest_memory.h"

namespace vmm {

class SavedPages {
 public:
  // Throws librr::Error for a page outside guest memory.
  SavedPages(const GuestMemory& memory, const std::vector<uint64_t>& gfns);
  bool equal_to_guest() const;
  void restore_guest() const;
  // The saved copy of `gfn` (empty if it is not among the saved pages).
  std::span<const uint8_t> page(uint64_t gfn) const;

 private:
  uint8_t* at(uint64_t gfn) const;
  GuestMemory memory_;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pages_;  // ascending gfns
};

}  // namespace vmm
