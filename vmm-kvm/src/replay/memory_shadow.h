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
#include "librr/page_delta.h"

namespace vmm {

// KVM's dirty bitmap is reset by every read, but several consumers want "pages
// written since my last look". DirtyPages accumulates reads for one consumer.
class DirtyPages {
 public:
  explicit DirtyPages(uint64_t page_count) : bits_((page_count + 63) / 64, 0) {}
  void merge(const std::vector<uint64_t>& kvm_bitmap);
  // The page frame numbers marked so far, ascending; clears the set.
  std::vector<uint64_t> take();
  // The same without clearing.
  std::vector<uint64_t> listed() const;

 private:
  std::vector<uint64_t> bits_;
};

class MemoryShadow {
 public:
  static constexpr uint64_t kPageSize = 4096;
  // Copies only the guest pages the host has populated: the others read as
  // zeros, and so does the shadow's fresh anonymous mapping. Copying all of a
  // 128 MiB guest faulted in every shadow page and took 0.3-0.7 s on these
  // hosts, most of a short recording's overhead.
  // An empty `memory` makes an unused shadow (no mapping).
  explicit MemoryShadow(GuestMemory memory);

  // Record: the delta of `dirty_gfns` against the shadow (DeltaBase::shadow),
  // which then takes the pages' current contents. Every page is listed, even
  // one equal to its shadow (replay may hold an intermediate value).
  librr::MemoryDelta capture(uint64_t reset_landmark, const std::vector<uint64_t>& dirty_gfns);
  // Record, when this shadow holds memory as of the previous position (the
  // RecordSession keeps a second shadow for that): the delta of `dirty_gfns`
  // with DeltaBase::previous_position; pages equal to it are listed with an
  // empty delta, as capture() does. The shadow then takes the pages' contents.
  // With `copies`, a page whose bytes are found at one of its candidate
  // sources in this shadow (outside `dirty_gfns`) may be logged as a copy.
  librr::MemoryDelta capture_since_previous_position(uint64_t landmark,
                                                     const std::vector<uint64_t>& dirty_gfns,
                                                     const librr::PageCopyIndex* copies = nullptr);
  // Copies the current contents of `gfns` (or of the delta's pages) into the shadow.
  void refresh(const std::vector<uint64_t>& gfns);
  void refresh(const librr::MemoryDelta& delta);
  // Copies all of guest memory (the populated pages) into the shadow.
  void refresh_all();
  // Record, rolling the guest back: copies the shadow's `gfns` into guest memory.
  void restore_guest(const std::vector<uint64_t>& gfns) const;

  // Replay: installs the delta of the asynchronous position `at` into guest
  // memory and the shadow. DeltaBase::shadow: page = shadow XOR delta.
  // DeltaBase::previous_position: page = (memory at the previous position)
  // XOR delta, that memory being guest memory now unless keep_preimages()
  // saved it before the guest ran on. DeltaBase::return_to_user: the same
  // with memory right after the kernel's return (guest memory now: the
  // caller ran there, unless keep_return_to_user_preimages() saved it). Throws librr::FormatError
  // for a page outside guest memory, a bad delta, or a reset landmark that is not `at`'s.
  void apply(const librr::MemoryDelta& delta, const librr::Position& at);
  // Replay, before executing instructions at `here` (stepping into the
  // stretch an asynchronous position skips): saves the guest pages the next
  // position's delta (`next`) is based on, if it is a previous_position delta.
  void keep_preimages(const librr::AsyncPosition& next, const librr::Position& here);
  // The same for a DeltaBase::return_to_user delta, called where the guest
  // stands on the return it names (after `here`, the previous position):
  // memory as it is now, which a later call replaces, is the delta's base.
  void keep_return_to_user_preimages(const librr::AsyncPosition& next, const librr::Position& here);
  // Whether keep_*preimages() saved the base of the stop at `at`.
  bool holds_preimages_for(const librr::Position& at) const;
  // The shadow itself (checkpoints copy it).
  std::span<uint8_t> bytes() { return {data(), memory_.size()}; }
  // One page of it (`gfn` inside guest memory).
  std::span<const uint8_t> page(uint64_t gfn) const {
    return {data() + gfn * kPageSize, kPageSize};
  }

 private:
  uint8_t* data() const { return static_cast<uint8_t*>(shadow_.get()); }

  uint8_t* guest_page(uint64_t gfn) const;
  // Each of `dirty_gfns` in RAM as shadow (before) against guest memory (now).
  std::vector<librr::PageChange> changes_against_shadow(
      const std::vector<uint64_t>& dirty_gfns) const;

  void save_preimages(const librr::MemoryDelta& delta, const librr::Position& here);

  GuestMemory memory_;
  kvm::Mapping shadow_;  // anonymous, zero-filled on demand
  // keep_preimages(): guest pages as they were at `preimages_at_`.
  librr::Position preimages_at_{UINT64_MAX, 0, 0};
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> preimages_;
};

// The position an asynchronous position's previous_position delta is based
// on: its landmark for the first stop after it, else the stop before.
librr::Position previous_position_of(const librr::Position& async_position);

}  // namespace vmm
