#pragma once
// zstd compression with sizes bounded up front, because every compressed blob
// librr reads may come from a hostile or damaged file.
#include <cstdint>
#include <span>
#include <vector>

namespace librr {

std::vector<uint8_t> zstd_compress(std::span<const uint8_t> data, int level = 3);
// Decompresses exactly `expected_size` bytes; throws FormatError if the data
// is corrupt or does not decompress to that size. `expected_size` must come
// from a checked header and is capped at `max_size`.
std::vector<uint8_t> zstd_decompress(std::span<const uint8_t> data, uint64_t expected_size,
                                     uint64_t max_size = uint64_t{1} << 32);
// Like zstd_decompress, into a buffer the caller reuses: decompresses exactly
// `out.size()` bytes (the caller has checked that size against its limit).
// `prefix`: the bytes the frame was compressed after (ZstdCompressor's prefix).
void zstd_decompress_into(std::span<const uint8_t> data, std::span<uint8_t> out,
                          std::span<const uint8_t> prefix = {});

// Reusable compression context for hot paths (avoids reallocating zstd's
// tables per call). Not thread-safe: one per thread.
class ZstdCompressor {
 public:
  explicit ZstdCompressor(int level = 3);
  ~ZstdCompressor();
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;
  // Appends the compressed form of `data` to `out`; returns the number of bytes appended.
  // A non-empty `prefix` is content the frame may refer back to as if it came
  // just before `data` (zstd's referenced prefix): decompressing it needs the
  // same prefix. The log chains its chunks this way (format 2.7).
  size_t compress_append(std::span<const uint8_t> data, std::vector<uint8_t>& out,
                         std::span<const uint8_t> prefix = {});

 private:
  void* ctx_;
  int level_;
};

}  // namespace librr
