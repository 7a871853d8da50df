#include "replay/memory_shadow.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <memory>
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

namespace {

kvm::Mapping map_zeroed(uint64_t size) {
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED)
    librr::throw_errno("mmap memory shadow of " + std::to_string(size >> 20) + " MiB");
  return kvm::Mapping(addr, size);
}

}  // namespace

XXH128_hash_t hash_guest_memory(GuestMemory memory) {
  const auto held = librr::held_pages(memory.host_base(), memory.size());
  if (!held) return XXH3_128bits(memory.host_base(), memory.size());
  static constexpr std::array<uint8_t, MemoryShadow::kPageSize> kZeroPage{};
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state) throw librr::Error("hash_guest_memory: out of memory for the XXH3 state");
  XXH3_128bits_reset(state.get());
  const uint64_t pages = memory.size() / MemoryShadow::kPageSize;
  uint64_t run_start = 0;  // first page of the current run of held pages
  for (uint64_t gfn = 0; gfn <= pages; ++gfn) {
    if (gfn < pages && (*held)[gfn]) continue;
    if (gfn > run_start)
      XXH3_128bits_update(state.get(), memory.host_base() + run_start * MemoryShadow::kPageSize,
                          (gfn - run_start) * MemoryShadow::kPageSize);
    if (gfn < pages) XXH3_128bits_update(state.get(), kZeroPage.data(), kZeroPage.size());
    run_start = gfn + 1;
  }
  return XXH3_128bits_digest(state.get());
}

MemoryShadow::MemoryShadow(GuestMemory memory)
    : memory_(memory), shadow_(map_zeroed(memory.size())) {
  static_assert(kPageSize == librr::kHostPageSize);
  const uint64_t pages = memory.size() / kPageSize;
  const auto held = librr::held_pages(memory.host_base(), memory.size());
  for (uint64_t gfn = 0; gfn < pages; ++gfn) {
    if (held && !(*held)[gfn]) continue;
    const uint8_t* page = memory.host_base() + gfn * kPageSize;
    // A held page may still be zeros (a read mapped the zero page, e.g. the
    // snapshot's scan): the shadow reads as zeros already, leave it unwritten.
    if (std::all_of(page, page + kPageSize, [](uint8_t b) { return b == 0; })) continue;
    std::memcpy(data() + gfn * kPageSize, page, kPageSize);
  }
}

librr::MemoryDelta MemoryShadow::capture(uint64_t reset_landmark,
                                         const std::vector<uint64_t>& dirty_gfns) {
  std::vector<librr::PageChange> changes;
  changes.reserve(dirty_gfns.size());
  for (uint64_t gfn : dirty_gfns) {
    const uint8_t* current = memory_.translate(gfn * kPageSize, kPageSize);
    if (!current) continue;  // KVM reports only RAM pages; be defensive anyway
    changes.push_back({gfn, {data() + gfn * kPageSize, kPageSize}, {current, kPageSize}});
  }
  // Every written page is listed, even one written back to its old value:
  // replay may hold an intermediate value from the re-executed part.
  librr::MemoryDelta delta =
      librr::make_memory_delta(reset_landmark, changes, librr::UnchangedPages::kKeep);
  for (const librr::PageDelta& page : delta.pages)
    std::memcpy(data() + page.gfn * kPageSize, memory_.translate(page.gfn * kPageSize, kPageSize),
                kPageSize);
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
    std::span<uint8_t> shadow_page(data() + page.gfn * kPageSize, kPageSize);
    librr::apply_page_delta(page, shadow_page);
    std::memcpy(guest, shadow_page.data(), kPageSize);
  }
}

}  // namespace vmm
