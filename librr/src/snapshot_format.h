#pragma once
// On-disk structures of the snapshot format shared by the writer, reader and
// verifier. The byte layout is documented in schemas/snapshot-format.md;
// keep the two in step. Internal to librr (not installed).
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/snapshot.h"
#include "posix_file.h"

namespace librr::snapshot_format {

inline constexpr std::array<uint8_t, 8> kHeaderMagic = {0x89, 'R', 'R', 'S', 'N', 'A', 'P', '\n'};
inline constexpr std::array<uint8_t, 8> kTrailerMagic = {0x89, 'R', 'R', 'S', 'E', 'N', 'D', '\n'};
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kTrailerSize = 64;
// Bytes of the trailer that follow the digest field and so are not covered by it.
inline constexpr size_t kTrailerDigestOffset = 24;
inline constexpr size_t kFingerprintSize = 16;
inline constexpr uint32_t kFlagEncrypted = 1;
inline constexpr size_t kFrameHeaderSize = 16;
// A frame holds at most one block: 4 MiB of data that zstd may expand
// slightly, the block's extent list and the encryption overhead.
inline constexpr uint32_t kMaxFramePayload = kSnapshotMaxBlockRaw + (1u << 20);
inline constexpr uint32_t kMaxPagesPerBlock = kSnapshotMaxBlockRaw / kSnapshotPageSize;
// Upper bound on a memory region (256 TiB): larger sizes are corruption.
inline constexpr uint64_t kMaxRegionSize = uint64_t{1} << 48;

enum class FrameType : uint32_t { kBlobChunk = 1, kMemoryBlock = 2, kSectionTable = 3 };

struct FileHeader {
  uint16_t major = kSnapshotFormatMajor;
  uint16_t minor = kSnapshotFormatMinor;
  uint32_t flags = 0;
  std::string key_fingerprint;  // empty unless encrypted

  bool encrypted() const { return (flags & kFlagEncrypted) != 0; }
  std::array<uint8_t, kHeaderSize> encode() const;
  // Throws FormatError on bad magic, unsupported version, unknown flags or checksum.
  static FileHeader decode(std::span<const uint8_t> bytes, const std::string& file);
};

struct Trailer {
  uint64_t table_offset = 0;
  uint64_t table_length = 0;
  uint64_t file_length = 0;
  Digest digest{};

  std::array<uint8_t, kTrailerSize> encode() const;
  // Checks magic and that the table lies between the header and the trailer
  // of a file of `file_size` bytes.
  static Trailer decode(std::span<const uint8_t> bytes, uint64_t file_size,
                        const std::string& file);
};

// A section as the table describes it: the public info plus what the reader
// needs to check and decrypt its frames.
struct TableEntry {
  SectionInfo info;
  uint32_t frame_count = 0;
  uint64_t section_checksum = 0;  // XXH3 of the frames' checksums, in order
  std::array<uint8_t, StreamEncryptor::kHeaderSize> stream_header{};  // encrypted files only
};

std::vector<uint8_t> encode_table(const std::vector<TableEntry>& entries, bool encrypted);
// Validates names, kinds, sizes and that sections tile [kHeaderSize, table_offset) in order.
std::vector<TableEntry> decode_table(std::span<const uint8_t> plain, bool encrypted,
                                     uint64_t table_offset, int64_t frame_offset);

// Checksum of a section: XXH3 over the little-endian checksums of its frames.
uint64_t section_checksum(const std::vector<uint64_t>& frame_checksums);

// One frame as read from the file, checksum already verified.
struct Frame {
  FrameType type;
  uint64_t offset;  // of the frame header
  uint64_t checksum;
  // The length and type fields (8 bytes, covered by the checksum) then the payload.
  std::vector<uint8_t> covered;
  std::span<const uint8_t> payload() const { return std::span(covered).subspan(8); }
  uint64_t end() const { return offset + 8 + covered.size(); }
};
// Reads the frame at `offset`, which must end by `limit`. Throws FormatError
// (with the offset) on truncation, oversize length or checksum mismatch.
Frame read_frame(const PosixFile& file, uint64_t offset, uint64_t limit);

// Thrown when authenticated decryption fails, so callers can tell "wrong key
// or tampered" from other structural damage.
class DecryptionError : public FormatError {
 public:
  using FormatError::FormatError;
};

// Thrown when a stored XXH3 checksum does not match the bytes.
class ChecksumError : public FormatError {
 public:
  using FormatError::FormatError;
};

// True if the `n` bytes at `p` are all zero.
bool is_zero(const uint8_t* p, size_t n);

// Bytes of page `index` in a region of `region_size` bytes (the last page may be partial).
inline uint64_t page_bytes(uint64_t region_size, uint64_t index) {
  uint64_t start = index * kSnapshotPageSize;
  return region_size - start < kSnapshotPageSize ? region_size - start : kSnapshotPageSize;
}
inline uint64_t page_count(uint64_t region_size) {
  return (region_size + kSnapshotPageSize - 1) / kSnapshotPageSize;
}

struct Extent {
  uint64_t first_page;
  uint32_t page_count;
};

}  // namespace librr::snapshot_format
