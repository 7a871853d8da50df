#pragma once
// Page deltas: how one guest page of an asynchronous position's MemoryDelta
// is coded against its base (schemas/log-format.md, "Page deltas"). A VMM
// builds them with make_page_delta / make_memory_delta at record and turns
// base pages into recorded pages with apply_page_delta at replay.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "librr/events.h"

namespace librr {

// What to do with a page equal to its shadow. A VMM that installs deltas
// instead of re-executing must keep them: a page written after the reset point
// and written back to its old value before the stop must still be reset on
// replay, which may hold the intermediate value. Kept unchanged pages have an
// empty compressed_xor.
enum class UnchangedPages { kOmit, kKeep };

// Guest memory at a previous_position delta's base, for the copied-range
// form (since log format 2.6): a page into which the guest copied bytes that
// were already in memory (Linux unpacking its initramfs into the page cache,
// also when a stop comes in the middle of one page's copy) is logged as "its
// bytes from O to O+N are those at source address S" plus a XOR residual,
// instead of their content. The source may not overlap a page the delta
// lists: replay reads it from memory it has not installed anything into yet,
// record from its copy of the memory at the base, and both hold the same
// bytes there.
struct BaseMemory {
  std::span<const uint8_t> bytes;         // all of guest memory from address 0
  std::span<const uint64_t> listed_gfns;  // the delta's pages, ascending
  // Why the `length` bytes at `address` cannot be a source: they lie outside
  // `bytes` or overlap a listed page (of `page_size` bytes); nullopt if they can.
  std::optional<std::string> refusal(uint64_t address, size_t length, size_t page_size) const;
  // Those bytes; throws FormatError with the refusal.
  std::span<const uint8_t> source(uint64_t address, size_t length, size_t page_size) const;
};
// The page frame numbers a delta lists, ascending (BaseMemory::listed_gfns).
std::vector<uint64_t> listed_gfns(const MemoryDelta& delta);

// Where a page's bytes may have been copied from, among regions of memory a
// VMM expects guests to copy (the initrd it loaded): a sorted table of the
// 8-byte values at every 4-byte-aligned offset of those regions (cpio puts
// file data at 4-byte alignment), 16 bytes per 4 bytes of region. Record
// only; candidates are checked against BaseMemory before use.
class PageCopyIndex {
 public:
  // Indexes `bytes`, found at guest address `address`. Call before lookups.
  void add_region(uint64_t address, std::span<const uint8_t> bytes);
  bool empty() const { return entries_.empty(); }
  // Source addresses whose bytes agree with `page` at one of a few sample
  // offsets, at most `limit`, without duplicates.
  std::vector<uint64_t> candidates(std::span<const uint8_t> page, size_t limit = 4) const;

 private:
  struct Entry {
    uint64_t key;      // the 8 bytes at `address`, little-endian
    uint64_t address;  // guest address
    friend bool operator<(const Entry& a, const Entry& b) { return a.key < b.key; }
  };
  std::vector<Entry> entries_;
};

// Record's means to log copied pages: where to look, and the memory at the base.
struct PageCopySearch {
  const PageCopyIndex& index;
  BaseMemory base;
};

// Delta of one page: `shadow` is the page at the reset point, `current` the
// page now (same size). Returns nullopt when the page is unchanged and
// `unchanged` is kOmit. A page that does not fit the sparse form is also
// tried as a filled range (its longest run of one byte value: a memset in
// progress) and, with `copies`, as a range copied from each candidate
// source; the smallest form wins.
std::optional<PageDelta> make_page_delta(uint64_t gfn, std::span<const uint8_t> shadow,
                                         std::span<const uint8_t> current,
                                         UnchangedPages unchanged = UnchangedPages::kOmit,
                                         const PageCopySearch* copies = nullptr);

// Turns `page` (holding the base copy) into the recorded page in place (an
// empty compressed_xor leaves it as it is). A copied page reads its source
// from `base`, which must then be given. Throws FormatError if the delta does
// not decompress to exactly page.size() bytes, or names a source `base`
// refuses (or no `base`).
void apply_page_delta(const PageDelta& delta, std::span<uint8_t> page,
                      const BaseMemory* base = nullptr);
// Whether the delta holds the page's new content instead of a XOR (the
// literal form, since log format 2.4; schemas/log-format.md, "Page deltas").
bool is_literal_page(const PageDelta& delta);
// How a page delta is coded (schemas/log-format.md, "Page deltas").
enum class PageForm {
  unchanged,     // empty: the page equals its base
  sparse_xor,    // runs of XOR bytes
  zstd_xor,      // a zstd frame of the XOR
  literal,       // a zstd frame of the new content (since 2.4)
  copied_range,  // a range from the base memory, plus a XOR (since 2.6)
  filled_range,  // a range of one byte value, plus a XOR (since 2.6)
};
PageForm page_form(const PageDelta& delta);

struct PageChange {
  uint64_t gfn;
  std::span<const uint8_t> shadow;
  std::span<const uint8_t> current;
};
// Builds a delta from (shadow, current) pairs, leaving out unchanged pages.
// `copies` is only for DeltaBase::previous_position (the form's base).
MemoryDelta make_memory_delta(uint64_t reset_landmark, std::span<const PageChange> pages,
                              UnchangedPages unchanged = UnchangedPages::kOmit,
                              DeltaBase base = DeltaBase::shadow,
                              const PageCopySearch* copies = nullptr);

}  // namespace librr
