#include "replay/memory_shadow.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "librr/error.h"
#include "librr/host_memory.h"

namespace vmm {

void DirtyPages::merge(const std::vector<uint64_t>& kvm_bitmap) {
  const size_t n = std::min(bits_.size(), kvm_bitmap.size());
  for (size_t i = 0; i < n; ++i) bits_[i] |= kvm_bitmap[i];
}

std::vector<uint64_t> DirtyPages::take() {
  std::vector<uint64_t> gfns = listed();
  std::fill(bits_.begin(), bits_.end(), 0);
  return gfns;
}

std::vector<uint64_t> DirtyPages::listed() const {
  std::vector<uint64_t> gfns;
  for (size_t word = 0; word < bits_.size(); ++word) {
    uint64_t bits = bits_[word];
    while (bits) {
      gfns.push_back(word * 64 + std::countr_zero(bits));
      bits &= bits - 1;
    }
  }
  return gfns;
}

namespace {

kvm::Mapping map_zeroed(uint64_t size) {
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED)
    librr::throw_errno("mmap memory shadow of " + std::to_string(size >> 20) + " MiB");
  return kvm::Mapping(addr, size);
}

}  // namespace

MemoryShadow::MemoryShadow(GuestMemory memory)
    : memory_(memory), shadow_(memory.size() ? map_zeroed(memory.size()) : kvm::Mapping()) {
  static_assert(kPageSize == librr::kHostPageSize);
  refresh_all();
}

// A page the host never populated reads as zeros in guest memory and in the
// (zero-filled on demand) shadow alike; a populated page is copied only where
// it differs, so that equal pages (zeros above all: a read maps the zero
// page, e.g. the snapshot's scan) leave the shadow's page unfaulted.
void MemoryShadow::refresh_all() {
  if (memory_.size() == 0) return;
  const uint64_t pages = memory_.size() / kPageSize;
  const auto held = librr::held_pages(memory_.host_base(), memory_.size());
  for (uint64_t gfn = 0; gfn < pages; ++gfn) {
    if (held && !(*held)[gfn]) continue;
    const uint8_t* page = memory_.host_base() + gfn * kPageSize;
    uint8_t* copy = data() + gfn * kPageSize;
    if (std::memcmp(copy, page, kPageSize) != 0) std::memcpy(copy, page, kPageSize);
  }
}

uint8_t* MemoryShadow::guest_page(uint64_t gfn) const {
  uint8_t* guest =
      gfn < (uint64_t{1} << 40) ? memory_.translate(gfn * kPageSize, kPageSize) : nullptr;
  if (!guest)
    throw librr::FormatError("memory delta names page " + std::to_string(gfn) +
                             ", outside guest memory of " + std::to_string(memory_.size()) +
                             " bytes");
  return guest;
}

librr::Position previous_position_of(const librr::Position& async_position) {
  if (async_position.async_seq <= 1) return {async_position.landmark, 0, 0};
  return {async_position.landmark, async_position.async_seq - 1, 0};
}

std::vector<librr::PageChange> MemoryShadow::changes_against_shadow(
    const std::vector<uint64_t>& dirty_gfns) const {
  std::vector<librr::PageChange> changes;
  changes.reserve(dirty_gfns.size());
  for (uint64_t gfn : dirty_gfns) {
    const uint8_t* current = memory_.translate(gfn * kPageSize, kPageSize);
    if (!current) continue;  // KVM reports only RAM pages; be defensive anyway
    changes.push_back({gfn, {data() + gfn * kPageSize, kPageSize}, {current, kPageSize}});
  }
  return changes;
}

librr::MemoryDelta MemoryShadow::capture(uint64_t reset_landmark,
                                         const std::vector<uint64_t>& dirty_gfns) {
  const std::vector<librr::PageChange> changes = changes_against_shadow(dirty_gfns);
  // Every written page is listed, even one written back to its old value:
  // replay may hold an intermediate value from the re-executed part.
  librr::MemoryDelta delta =
      librr::make_memory_delta(reset_landmark, changes, librr::UnchangedPages::kKeep);
  refresh(delta);
  return delta;
}

librr::MemoryDelta MemoryShadow::capture_since_previous_position(
    uint64_t landmark, const std::vector<uint64_t>& dirty_gfns,
    const librr::PageCopyIndex* copies) {
  const std::vector<librr::PageChange> changes = changes_against_shadow(dirty_gfns);
  // This shadow is the memory at the base: the pages not listed equal guest
  // memory, which is where replay reads a copy's source.
  std::optional<librr::PageCopySearch> search;
  if (copies)
    search.emplace(librr::PageCopySearch{*copies, {{data(), memory_.size()}, dirty_gfns}});
  // A page written back to its base value is listed too (empty delta): replay
  // skips the stretch, but the analyzer may have stepped into it and written
  // an intermediate value that the install must undo.
  librr::MemoryDelta delta =
      librr::make_memory_delta(landmark, changes, librr::UnchangedPages::kKeep,
                               librr::DeltaBase::previous_position, search ? &*search : nullptr);
  refresh(dirty_gfns);
  return delta;
}

void MemoryShadow::refresh(const std::vector<uint64_t>& gfns) {
  for (uint64_t gfn : gfns)
    if (const uint8_t* current = memory_.translate(gfn * kPageSize, kPageSize))
      std::memcpy(data() + gfn * kPageSize, current, kPageSize);
}

void MemoryShadow::restore_guest(const std::vector<uint64_t>& gfns) const {
  for (uint64_t gfn : gfns)
    if (uint8_t* guest = memory_.translate(gfn * kPageSize, kPageSize))
      std::memcpy(guest, data() + gfn * kPageSize, kPageSize);
}

void MemoryShadow::refresh(const librr::MemoryDelta& delta) {
  for (const librr::PageDelta& page : delta.pages)
    std::memcpy(data() + page.gfn * kPageSize, guest_page(page.gfn), kPageSize);
}

void MemoryShadow::keep_preimages(const librr::AsyncPosition& next, const librr::Position& here) {
  const auto* delta = std::get_if<librr::MemoryDelta>(&next.memory);
  if (!delta || delta->base != librr::DeltaBase::previous_position ||
      previous_position_of(next.pos) != here || preimages_at_ == here)
    return;
  save_preimages(*delta, here);
}

void MemoryShadow::keep_return_to_user_preimages(const librr::AsyncPosition& next,
                                                 const librr::Position& here) {
  const auto* delta = std::get_if<librr::MemoryDelta>(&next.memory);
  if (!delta || delta->base != librr::DeltaBase::return_to_user ||
      previous_position_of(next.pos) != here)
    return;
  save_preimages(*delta, here);  // again at a later return: the last one is the base
}

bool MemoryShadow::holds_preimages_for(const librr::Position& at) const {
  return preimages_at_ == previous_position_of(at);
}

void MemoryShadow::save_preimages(const librr::MemoryDelta& delta, const librr::Position& here) {
  preimages_.clear();
  for (const librr::PageDelta& page : delta.pages) {
    const uint8_t* guest = guest_page(page.gfn);
    preimages_.emplace_back(page.gfn, std::vector<uint8_t>(guest, guest + kPageSize));
  }
  preimages_at_ = here;
}

void MemoryShadow::apply(const librr::MemoryDelta& delta, const librr::Position& at) {
  if (delta.base != librr::DeltaBase::shadow && delta.reset_landmark != at.landmark)
    throw librr::FormatError("async position " + at.to_string() +
                             ": its memory delta is based on landmark " +
                             std::to_string(delta.reset_landmark) + ", not on the position before");
  const bool use_preimages =
      delta.base != librr::DeltaBase::shadow && preimages_at_ == previous_position_of(at);
  // Copied pages read their source from guest memory outside the listed
  // pages, which nothing here writes: it is the memory at the base.
  const std::vector<uint64_t> listed = librr::listed_gfns(delta);
  const librr::BaseMemory base_memory{{memory_.host_base(), memory_.size()}, listed};
  std::vector<uint8_t> page_bytes(kPageSize);
  for (const librr::PageDelta& page : delta.pages) {
    uint8_t* guest = guest_page(page.gfn);
    std::span<uint8_t> shadow_page(data() + page.gfn * kPageSize, kPageSize);
    if (delta.base == librr::DeltaBase::shadow) {
      librr::apply_page_delta(page, shadow_page);
      std::memcpy(guest, shadow_page.data(), kPageSize);
      continue;
    }
    const uint8_t* base = guest;
    if (use_preimages) {
      auto it = std::find_if(preimages_.begin(), preimages_.end(),
                             [&](const auto& kept) { return kept.first == page.gfn; });
      if (it != preimages_.end()) base = it->second.data();
    }
    std::memcpy(page_bytes.data(), base, kPageSize);
    librr::apply_page_delta(page, page_bytes, &base_memory);
    std::memcpy(guest, page_bytes.data(), kPageSize);
    std::memcpy(shadow_page.data(), page_bytes.data(), kPageSize);
  }
  preimages_.clear();
  preimages_at_ = {UINT64_MAX, 0, 0};
}

}  // namespace vmm
