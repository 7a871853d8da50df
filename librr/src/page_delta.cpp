#include "librr/page_delta.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "librr/compress.h"
#include "librr/error.h"
#include "log_compact.h"

namespace librr {
namespace {

using logcompact::get_varint;
using logcompact::put_varint;

// A zstd frame of a 4 KiB page is never this big; a larger claim is corruption
// and must not drive an allocation.
constexpr uint64_t kMaxPageSize = uint64_t{1} << 21;

// The forms of a page delta, told apart by the first byte (schemas/log-format.md,
// "Page deltas"); a zstd frame starts with its magic, 0x28.
//
// Sparse (since format 2): kSparseMarker, varint page size, then runs of
// varint zero_bytes_skipped, varint run_length, run_length XOR bytes. A page
// the guest changed in a few places costs a few bytes instead of a ~40-byte
// zstd frame, and stays compressible by the chunk's zstd.
constexpr uint8_t kSparseMarker = 0x00;
constexpr uint8_t kZstdMagicFirstByte = 0x28;
// Literal (since 2.4): kLiteralMarker, then a zstd frame of the page's new
// content (not XORed). For a page overwritten with unrelated bytes, a fill
// above all (Linux poisons each freed init page with 0xcc), the XOR holds the
// old content's entropy and the new content none.
constexpr uint8_t kLiteralMarker = 0x01;
// Ranges (since 2.6): the page starts as its base, a range of it is replaced,
// then a residual is XORed in: nothing (the result is the page), a sparse
// form or a zstd frame.
// Copied: kCopyMarker, varint source address, varint offset, varint length:
// bytes [offset, offset + length) are those at the source address. A page the
// guest filled from memory it already held costs a few bytes, also halfway.
constexpr uint8_t kCopyMarker = 0x02;
// Filled: kFillMarker, varint offset, varint length, u8 value: a memset, in
// progress or not (Linux poisoning a freed page, clearing one).
constexpr uint8_t kFillMarker = 0x03;
// Ranges shorter than this are left to the other forms.
constexpr size_t kMinRange = 64;
// Mismatches up to this long do not end a copied range (the residual fixes them).
constexpr size_t kMaxRangeGap = 32;
// Zero gaps shorter than this are stored inside a run: a new run costs two varints.
constexpr size_t kMinGap = 3;
// Beyond this a sparse delta is not attempted further: zstd does better.
constexpr size_t kMaxSparseBytes = 512;

std::string page_name(const PageDelta& delta) {
  return "page delta for gfn " + std::to_string(delta.gfn);
}

// The sparse form of `xored`, or nullopt once it grows past kMaxSparseBytes.
std::optional<std::vector<uint8_t>> sparse_delta(std::span<const uint8_t> xored) {
  std::vector<uint8_t> out{kSparseMarker};
  put_varint(out, xored.size());
  size_t pos = 0;  // end of the previous run
  size_t i = 0;
  while (i < xored.size()) {
    if (xored[i] == 0) {
      ++i;
      continue;
    }
    // A run from i to the first gap of kMinGap zero bytes (or the end).
    size_t end = i + 1, zeros = 0;
    for (size_t k = i + 1; k < xored.size() && zeros < kMinGap; ++k) {
      zeros = xored[k] == 0 ? zeros + 1 : 0;
      if (xored[k] != 0) end = k + 1;
    }
    put_varint(out, i - pos);
    put_varint(out, end - i);
    out.insert(out.end(), xored.begin() + static_cast<std::ptrdiff_t>(i),
               xored.begin() + static_cast<std::ptrdiff_t>(end));
    if (out.size() > kMaxSparseBytes) return std::nullopt;
    pos = i = end;
  }
  return out;
}

// XORs the sparse form `coded` (marker included) into `page`.
void apply_sparse(std::span<const uint8_t> coded, std::span<uint8_t> page, const PageDelta& delta) {
  const std::string what = "sparse " + page_name(delta);
  size_t at = 1;  // after the marker
  const uint64_t size = get_varint(coded, at, what.c_str());
  if (size != page.size())
    throw FormatError(what + " is for a " + std::to_string(size) + "-byte page, the page has " +
                      std::to_string(page.size()));
  uint64_t pos = 0;
  while (at < coded.size()) {
    const uint64_t skip = get_varint(coded, at, what.c_str());
    const uint64_t length = get_varint(coded, at, what.c_str());
    if (skip > size - pos || length > size - pos - skip || length == 0 ||
        length > coded.size() - at)
      throw FormatError(what + ": run of " + std::to_string(length) + " bytes after " +
                            std::to_string(pos + skip) + " does not fit the page or the delta",
                        static_cast<int64_t>(at));
    pos += skip;
    for (uint64_t k = 0; k < length; ++k) page[pos + k] ^= coded[at + k];
    at += length;
    pos += length;
  }
}

// `frame` decompressed to exactly page.size() bytes.
std::vector<uint8_t> decompress_page(std::span<const uint8_t> frame, std::span<uint8_t> page,
                                     const PageDelta& delta) {
  try {
    return zstd_decompress(frame, page.size(), kMaxPageSize);
  } catch (const FormatError& e) {
    throw FormatError(page_name(delta) + ": " + e.what());
  }
}

// A XOR as the smaller of its sparse form and a zstd frame.
std::vector<uint8_t> code_xor(std::span<const uint8_t> xored) {
  if (auto sparse = sparse_delta(xored)) return std::move(*sparse);
  return zstd_compress(xored, 1);
}

std::vector<uint8_t> xor_of(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::vector<uint8_t> out(a.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

struct Range {
  size_t offset = 0, length = 0;
};

// `head` (a range form's marker and fields) followed by the residual that
// turns `built` (the base with the range replaced) into `current`.
std::vector<uint8_t> with_residual(std::vector<uint8_t> head, std::span<const uint8_t> built,
                                   std::span<const uint8_t> current) {
  if (std::equal(built.begin(), built.end(), current.begin())) return head;
  const std::vector<uint8_t> residual = code_xor(xor_of(built, current));
  head.insert(head.end(), residual.begin(), residual.end());
  return head;
}

// The filled form over the longest run of one byte value in `current`.
std::optional<std::vector<uint8_t>> filled_form(std::span<const uint8_t> base,
                                                std::span<const uint8_t> current) {
  Range best;
  for (size_t start = 0; start < current.size();) {
    size_t end = start + 1;
    while (end < current.size() && current[end] == current[start]) ++end;
    if (end - start > best.length) best = {start, end - start};
    start = end;
  }
  if (best.length < kMinRange) return std::nullopt;
  const uint8_t value = current[best.offset];
  std::vector<uint8_t> built(base.begin(), base.end());
  std::fill_n(built.begin() + static_cast<std::ptrdiff_t>(best.offset), best.length, value);
  std::vector<uint8_t> head{kFillMarker};
  put_varint(head, best.offset);
  put_varint(head, best.length);
  head.push_back(value);
  return with_residual(std::move(head), built, current);
}

// The longest stretch where `page` equals `window`, bridging mismatches of
// up to kMaxRangeGap bytes.
Range equal_range_of(std::span<const uint8_t> page, std::span<const uint8_t> window) {
  Range best;
  size_t start = 0, last_equal = 0;
  bool open = false;
  for (size_t i = 0; i < page.size(); ++i) {
    if (page[i] != window[i]) {
      if (open && i - last_equal > kMaxRangeGap) open = false;
      continue;
    }
    if (!open) start = i, open = true;
    last_equal = i;
    if (last_equal + 1 - start > best.length) best = {start, last_equal + 1 - start};
  }
  return best;
}

// The copied form of `current` from the candidate source that matches it
// over the longest range, or nullopt when no candidate is usable.
std::optional<std::vector<uint8_t>> copied_form(std::span<const uint8_t> base,
                                                std::span<const uint8_t> current,
                                                const PageCopySearch& copies) {
  const std::span<const uint8_t> memory = copies.base.bytes;
  std::optional<uint64_t> best_source;
  Range best;
  for (uint64_t address : copies.index.candidates(current)) {
    if (address > memory.size() || current.size() > memory.size() - address) continue;
    const Range range = equal_range_of(current, memory.subspan(address, current.size()));
    if (range.length <= best.length ||
        copies.base.refusal(address + range.offset, range.length, current.size()))
      continue;  // over a page the delta lists
    best = range, best_source = address + range.offset;
  }
  if (!best_source || best.length < kMinRange) return std::nullopt;
  std::vector<uint8_t> built(base.begin(), base.end());
  std::copy_n(memory.begin() + static_cast<std::ptrdiff_t>(*best_source), best.length,
              built.begin() + static_cast<std::ptrdiff_t>(best.offset));
  std::vector<uint8_t> head{kCopyMarker};
  put_varint(head, *best_source);
  put_varint(head, best.offset);
  put_varint(head, best.length);
  return with_residual(std::move(head), built, current);
}

// Reads a range form's offset and length at `at` and checks them against the page.
Range read_range(std::span<const uint8_t> coded, size_t& at, std::span<uint8_t> page,
                 const std::string& what) {
  Range range;
  range.offset = get_varint(coded, at, what.c_str());
  range.length = get_varint(coded, at, what.c_str());
  if (range.length == 0 || range.offset > page.size() || range.length > page.size() - range.offset)
    throw FormatError(what + ": range of " + std::to_string(range.length) + " bytes at " +
                          std::to_string(range.offset) + " does not fit a " +
                          std::to_string(page.size()) + "-byte page",
                      static_cast<int64_t>(at));
  return range;
}

// XORs `coded`, a XOR in its sparse form or as a zstd frame, into `page`.
void apply_xor(std::span<const uint8_t> coded, std::span<uint8_t> page, const PageDelta& delta) {
  if (coded.front() == kSparseMarker) return apply_sparse(coded, page, delta);
  const std::vector<uint8_t> bytes = decompress_page(coded, page, delta);
  for (size_t i = 0; i < page.size(); ++i) page[i] ^= bytes[i];
}

void apply_residual(std::span<const uint8_t> residual, std::span<uint8_t> page,
                    const PageDelta& delta, size_t at) {
  if (residual.empty()) return;
  if (residual.front() != kSparseMarker && residual.front() != kZstdMagicFirstByte)
    throw FormatError(page_name(delta) + ": a range's residual is not a XOR",
                      static_cast<int64_t>(at));
  apply_xor(residual, page, delta);
}

void apply_copied(const PageDelta& delta, std::span<uint8_t> page, const BaseMemory* base) {
  const std::span<const uint8_t> coded = delta.compressed_xor;
  if (!base)
    throw FormatError(page_name(delta) +
                      " copies bytes of the base memory, which a delta of this base cannot name");
  const std::string what = "copied " + page_name(delta);
  size_t at = 1;
  const uint64_t address = get_varint(coded, at, what.c_str());
  const Range range = read_range(coded, at, page, what);
  const std::span<const uint8_t> source = base->source(address, range.length, page.size());
  std::memmove(page.data() + range.offset, source.data(), range.length);
  apply_residual(coded.subspan(at), page, delta, at);
}

void apply_filled(const PageDelta& delta, std::span<uint8_t> page) {
  const std::span<const uint8_t> coded = delta.compressed_xor;
  const std::string what = "filled " + page_name(delta);
  size_t at = 1;
  const Range range = read_range(coded, at, page, what);
  if (at >= coded.size()) throw FormatError(what + ": no fill value", static_cast<int64_t>(at));
  std::fill_n(page.begin() + static_cast<std::ptrdiff_t>(range.offset), range.length, coded[at]);
  ++at;
  apply_residual(coded.subspan(at), page, delta, at);
}

}  // namespace

std::optional<std::string> BaseMemory::refusal(uint64_t address, size_t length,
                                               size_t page_size) const {
  if (length == 0 || address > bytes.size() || length > bytes.size() - address)
    return "page copy source of " + std::to_string(length) + " bytes at " +
           std::to_string(address) + " lies outside guest memory of " +
           std::to_string(bytes.size()) + " bytes";
  for (uint64_t gfn = address / page_size; gfn <= (address + length - 1) / page_size; ++gfn)
    if (std::binary_search(listed_gfns.begin(), listed_gfns.end(), gfn))
      return "page copy source at " + std::to_string(address) + " overlaps page " +
             std::to_string(gfn) + ", which the same delta lists";
  return std::nullopt;
}

std::span<const uint8_t> BaseMemory::source(uint64_t address, size_t length,
                                            size_t page_size) const {
  if (auto why = refusal(address, length, page_size)) throw FormatError(*why);
  return bytes.subspan(address, length);
}

std::vector<uint64_t> listed_gfns(const MemoryDelta& delta) {
  std::vector<uint64_t> gfns;
  gfns.reserve(delta.pages.size());
  for (const PageDelta& page : delta.pages) gfns.push_back(page.gfn);
  std::sort(gfns.begin(), gfns.end());
  return gfns;
}

void PageCopyIndex::add_region(uint64_t address, std::span<const uint8_t> bytes) {
  constexpr size_t kStride = 4;
  for (size_t offset = 0; offset + sizeof(uint64_t) <= bytes.size(); offset += kStride) {
    uint64_t key;
    std::memcpy(&key, bytes.data() + offset, sizeof key);
    // A fill (zeros, 0xff, ...) matches everywhere and tells nothing.
    if (key == (key & 0xff) * 0x0101010101010101ull) continue;
    entries_.push_back({key, address + offset});
  }
  std::stable_sort(entries_.begin(), entries_.end());
}

std::vector<uint64_t> PageCopyIndex::candidates(std::span<const uint8_t> page, size_t limit) const {
  std::vector<uint64_t> found;
  // Sample offsets: a page copied only partly yet matches at its start.
  for (size_t anchor = 0; anchor + sizeof(uint64_t) <= page.size() && found.size() < limit;
       anchor += 1024) {
    uint64_t key;
    std::memcpy(&key, page.data() + anchor, sizeof key);
    auto [first, last] = std::equal_range(entries_.begin(), entries_.end(), Entry{key, 0});
    for (; first != last && found.size() < limit; ++first)
      if (first->address >= anchor &&
          std::find(found.begin(), found.end(), first->address - anchor) == found.end())
        found.push_back(first->address - anchor);
  }
  return found;
}

std::optional<PageDelta> make_page_delta(uint64_t gfn, std::span<const uint8_t> shadow,
                                         std::span<const uint8_t> current, UnchangedPages unchanged,
                                         const PageCopySearch* copies) {
  if (shadow.size() != current.size())
    throw Error("make_page_delta: shadow page has " + std::to_string(shadow.size()) +
                " bytes, current page " + std::to_string(current.size()));
  if (std::equal(shadow.begin(), shadow.end(), current.begin())) {
    if (unchanged == UnchangedPages::kOmit) return std::nullopt;
    return PageDelta{gfn, {}};
  }
  const std::vector<uint8_t> xored = xor_of(shadow, current);
  std::vector<uint8_t> best;
  if (auto sparse = sparse_delta(xored)) {
    // A range form costs at least ~6 bytes: not worth a look below this.
    if (sparse->size() <= kMinRange / 2) return PageDelta{gfn, std::move(*sparse)};
    best = std::move(*sparse);
  } else {
    best = zstd_compress(xored, 1);
    std::vector<uint8_t> literal = zstd_compress(current, 1);
    if (literal.size() + 1 < best.size()) {
      literal.insert(literal.begin(), kLiteralMarker);
      best = std::move(literal);
    }
  }
  if (auto filled = filled_form(shadow, current); filled && filled->size() < best.size())
    best = std::move(*filled);
  if (copies && !copies->index.empty())
    if (auto copied = copied_form(shadow, current, *copies); copied && copied->size() < best.size())
      best = std::move(*copied);
  return PageDelta{gfn, std::move(best)};
}

PageForm page_form(const PageDelta& delta) {
  if (delta.compressed_xor.empty()) return PageForm::unchanged;
  switch (delta.compressed_xor.front()) {
    case kSparseMarker:
      return PageForm::sparse_xor;
    case kLiteralMarker:
      return PageForm::literal;
    case kCopyMarker:
      return PageForm::copied_range;
    case kFillMarker:
      return PageForm::filled_range;
    default:
      return PageForm::zstd_xor;
  }
}

bool is_literal_page(const PageDelta& delta) { return page_form(delta) == PageForm::literal; }

void apply_page_delta(const PageDelta& delta, std::span<uint8_t> page, const BaseMemory* base) {
  const std::span<const uint8_t> coded = delta.compressed_xor;
  if (coded.empty()) return;  // the page equals its base
  switch (coded.front()) {
    case kCopyMarker:
      return apply_copied(delta, page, base);
    case kFillMarker:
      return apply_filled(delta, page);
    case kLiteralMarker: {
      const std::vector<uint8_t> bytes = decompress_page(coded.subspan(1), page, delta);
      std::copy(bytes.begin(), bytes.end(), page.begin());
      return;
    }
    default:
      return apply_xor(coded, page, delta);
  }
}

MemoryDelta make_memory_delta(uint64_t reset_landmark, std::span<const PageChange> pages,
                              UnchangedPages unchanged, DeltaBase base,
                              const PageCopySearch* copies) {
  if (copies && base != DeltaBase::previous_position)
    throw Error(
        "make_memory_delta: copied pages are only for deltas based on the previous position");
  MemoryDelta delta{reset_landmark, {}, base};
  for (const auto& change : pages)
    if (auto page = make_page_delta(change.gfn, change.shadow, change.current, unchanged, copies))
      delta.pages.push_back(std::move(*page));
  return delta;
}

}  // namespace librr
