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
// Literal (since 2.4): kLiteralMarker, then a zstd frame of the page's new
// content (not XORed). For a page overwritten with unrelated bytes, a fill
// above all (Linux poisons each freed init page with 0xcc), the XOR holds the
// old content's entropy and the new content none.
constexpr uint8_t kLiteralMarker = 0x01;
// Copied (since 2.6): kCopyMarker, varint source address, then the XOR of the
// page against the source's bytes as nothing (equal), a sparse form or a zstd
// frame. A page filled from memory the guest already held costs a few bytes.
constexpr uint8_t kCopyMarker = 0x02;
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

// The copied form of `current` from the candidate source that matches it
// best, or nullopt when no candidate is usable.
std::optional<std::vector<uint8_t>> copied_form(std::span<const uint8_t> current,
                                                const PageCopySearch& copies) {
  std::optional<uint64_t> best;
  size_t best_equal = 0;
  for (uint64_t address : copies.index.candidates(current)) {
    std::span<const uint8_t> source;
    try {
      source = copies.base.source(address, current.size());
    } catch (const FormatError&) {
      continue;  // outside memory or over a page the delta lists
    }
    size_t equal = 0;
    for (size_t i = 0; i < current.size(); ++i) equal += source[i] == current[i];
    if (equal > best_equal) best_equal = equal, best = address;
  }
  if (!best) return std::nullopt;
  std::vector<uint8_t> out{kCopyMarker};
  put_varint(out, *best);
  if (best_equal == current.size()) return out;
  const std::vector<uint8_t> residual =
      code_xor(xor_of(copies.base.source(*best, current.size()), current));
  out.insert(out.end(), residual.begin(), residual.end());
  return out;
}

void apply_copied(const PageDelta& delta, std::span<uint8_t> page, const BaseMemory* base) {
  const std::span<const uint8_t> coded = delta.compressed_xor;
  if (!base)
    throw FormatError(page_name(delta) +
                      " copies bytes of the base memory, which a delta of this base cannot name");
  size_t at = 1;
  const std::string what = "copied " + page_name(delta);
  const uint64_t address = get_varint(coded, at, what.c_str());
  const std::span<const uint8_t> source = base->source(address, page.size());
  std::memmove(page.data(), source.data(), page.size());
  const std::span<const uint8_t> residual = coded.subspan(at);
  if (residual.empty()) return;
  if (residual.front() == kSparseMarker) return apply_sparse(residual, page, delta);
  if (residual.front() == kLiteralMarker || residual.front() == kCopyMarker)
    throw FormatError(what + ": its residual is not a XOR", static_cast<int64_t>(at));
  const std::vector<uint8_t> bytes = decompress_page(residual, page, delta);
  for (size_t i = 0; i < page.size(); ++i) page[i] ^= bytes[i];
}

}  // namespace

std::span<const uint8_t> BaseMemory::source(uint64_t address, size_t length) const {
  if (length == 0 || address > bytes.size() || length > bytes.size() - address)
    throw FormatError("page copy source of " + std::to_string(length) + " bytes at " +
                      std::to_string(address) + " lies outside guest memory of " +
                      std::to_string(bytes.size()) + " bytes");
  // A page delta's gfn counts pages of its own size.
  for (uint64_t gfn = address / length; gfn <= (address + length - 1) / length; ++gfn)
    if (std::binary_search(listed_gfns.begin(), listed_gfns.end(), gfn))
      throw FormatError("page copy source at " + std::to_string(address) + " overlaps page " +
                        std::to_string(gfn) + ", which the same delta lists");
  return bytes.subspan(address, length);
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
  if (auto sparse = sparse_delta(xored)) return PageDelta{gfn, std::move(*sparse)};
  std::vector<uint8_t> best = zstd_compress(xored, 1);
  std::vector<uint8_t> literal = zstd_compress(current, 1);
  if (literal.size() + 1 < best.size()) {
    literal.insert(literal.begin(), kLiteralMarker);
    best = std::move(literal);
  }
  if (copies && !copies->index.empty())
    if (auto copied = copied_form(current, *copies); copied && copied->size() < best.size())
      best = std::move(*copied);
  return PageDelta{gfn, std::move(best)};
}

bool is_literal_page(const PageDelta& delta) {
  return !delta.compressed_xor.empty() && delta.compressed_xor.front() == kLiteralMarker;
}

bool is_copied_page(const PageDelta& delta) {
  return !delta.compressed_xor.empty() && delta.compressed_xor.front() == kCopyMarker;
}

void apply_page_delta(const PageDelta& delta, std::span<uint8_t> page, const BaseMemory* base) {
  const std::span<const uint8_t> coded = delta.compressed_xor;
  if (coded.empty()) return;  // the page equals its base
  switch (coded.front()) {
    case kSparseMarker:
      return apply_sparse(coded, page, delta);
    case kCopyMarker:
      return apply_copied(delta, page, base);
    case kLiteralMarker: {
      const std::vector<uint8_t> bytes = decompress_page(coded.subspan(1), page, delta);
      std::copy(bytes.begin(), bytes.end(), page.begin());
      return;
    }
    default: {
      const std::vector<uint8_t> bytes = decompress_page(coded, page, delta);
      for (size_t i = 0; i < page.size(); ++i) page[i] ^= bytes[i];
    }
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
