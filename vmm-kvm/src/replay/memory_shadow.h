#pragma once
// The shadow copy of guest memory that makes asynchronous positions exact by
// construction (docs/record-replay.md). Record and replay keep identical
// shadows: both start from the initial snapshot's memory and both update
// exactly the pages listed in each MemoryDelta, so on replay
// `page = shadow XOR delta` reproduces the recorded page byte for byte.
#include <xxhash.h>

#include <cstdint>
#include <span>
#include <vector>

#include "guest_memory.h"
#include "kvm/kvm.h"
#include "librr/events.h"

namespace vmm {

// KVM's dirty bitmap is reset by every read, but several consumers want "pages
// written since my last look". DirtyPages accumulates reads for one consumer.
class DirtyPages {
 public:
  explicit DirtyPages(uint64_t page_count) : bits_((page_count + 63) / 64, 0) {}
  void merge(const std::vector<uint64_t>& kvm_bitmap);
  // The page frame numbers marked so far, ascending; clears the set.
  std::vector<uint64_t> take();

 private:
  std::vector<uint64_t> bits_;
};

// XXH3-128 of all of guest memory (the state digest's memory part), without
// faulting in pages the host never populated: they are hashed as zeros, which
// is what they read as, so the value is that of hashing every byte.
XXH128_hash_t hash_guest_memory(GuestMemory memory);

class MemoryShadow {
 public:
  static constexpr uint64_t kPageSize = 4096;
  // Copies only the guest pages the host has populated: the others read as
  // zeros, and so does the shadow's fresh anonymous mapping. Copying all of a
  // 128 MiB guest faulted in every shadow page and took 0.3-0.7 s on these
  // hosts, most of a short recording's overhead.
  explicit MemoryShadow(GuestMemory memory);

  // Record: the delta of `dirty_gfns` against the shadow, which then takes the
  // pages' current contents. Pages equal to their shadow are left out.
  librr::MemoryDelta capture(uint64_t reset_landmark, const std::vector<uint64_t>& dirty_gfns);
  // Replay: writes shadow XOR delta into guest memory and the shadow. Throws
  // librr::FormatError for a page outside guest memory or a bad delta.
  void apply(const librr::MemoryDelta& delta);
  // The shadow itself (checkpoints copy it).
  std::span<uint8_t> bytes() { return {data(), memory_.size()}; }

 private:
  uint8_t* data() const { return static_cast<uint8_t*>(shadow_.get()); }

  GuestMemory memory_;
  kvm::Mapping shadow_;  // anonymous, zero-filled on demand
};

}  // namespace vmm
