#pragma once
// Internal: the byte layout of log files (schemas/log-format.md is the
// normative description; keep the two in sync). Shared by the writer, the
// reader, the index and the tests that forge tampered logs.
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/position.h"

namespace librr::logfmt {

inline constexpr std::array<uint8_t, 8> kFileMagic = {'R', 'R', 'L', 'O', 'G', 0, '\r', '\n'};
// Format 2 (current) differs from format 1 only in the chunk payload: records
// are stored compactly (log_compact.h). Readers accept both; the writer
// writes 2 unless told otherwise (LogWriterOptions::format_version).
// Minor 1 (2.1) adds memory kind 2 to AsyncPosition (a delta against the
// memory replay holds at the previous position, DeltaBase::previous_position).
// Minor 2 (2.2) adds the optional kernel-entry count after an AsyncPosition's
// memory part (AsyncPosition::kernel_entries).
// Minor 3 (2.3) adds memory kind 3 to AsyncPosition (PagesDigest: a stop
// replay searches for instead of installing).
// Minor 4 (2.4) adds the literal page form to memory deltas (a page's new
// content instead of its XOR against the base).
// Minor 5 (2.5) writes chunk headers compactly (ChunkLayout::compact).
// Minor 6 (2.6) adds the copied page form to memory deltas (a page as the
// bytes at a source address of the base memory plus a XOR residual).
inline constexpr uint16_t kVersionMajor = 2;
// Minor 7 (2.7) stores clock samples as deltas in compact payloads
// (log_compact.h) and compresses each chunk but every kKeyChunkInterval-th
// with the previous chunk's payload as a zstd prefix.
// Minor 8 (2.8) adds memory kind 4 to AsyncPosition (KernelReturn: a stop
// at the kernel's return to user mode, re-executed instead of installed).
// Minor 9 (2.9) adds memory kind 5 to AsyncPosition (SearchedStop: a
// searched stop logged as its rip and a hash of its registers, no vCPU state).
// Minor 10 (2.10) adds memory kind 6 (SearchedStop with 32-bit hashes).
// Minor 11 (2.11) adds memory kinds 7 (SearchedStop with one 32-bit hash of
// registers and pages) and 8 (KernelReturn with a 32-bit registers hash).
// Minor 12 (2.12) adds memory kind 9 (SearchedStop whose pages, those
// written since the previous position, are implied rather than listed).
// Minor 13 (2.13) adds memory kind 10 (a memory delta against guest memory
// right after the kernel's first return to user mode after the previous
// position, DeltaBase::return_to_user, with that return's address).
inline constexpr uint16_t kVersionMinor = 13;
inline constexpr uint16_t kCompactChunkHeaderMinor = 5;
inline constexpr uint16_t kClockDeltaMinor = 7;
inline constexpr uint16_t kChainedChunksMinor = 7;
// Chunks whose sequence number is a multiple of this stand alone (a seek
// decompresses at most this many chunks); each other one's zstd frame was
// made with the previous chunk's compact payload as its prefix.
inline constexpr uint64_t kKeyChunkInterval = 8;
inline constexpr uint16_t kOldestVersionMajor = 1;
// What a log of version major.minor may hold, for the writer, the reader and
// the byte report alike: clock samples as deltas in compact payloads, and
// whether chunk `sequence`'s zstd frame has the previous chunk's payload as
// its prefix.
inline constexpr bool has_clock_deltas(uint16_t major, uint16_t minor) {
  return major == 2 && minor >= kClockDeltaMinor;
}
inline constexpr bool chunk_has_prefix(uint16_t major, uint16_t minor, uint64_t sequence) {
  return major == 2 && minor >= kChainedChunksMinor && sequence % kKeyChunkInterval != 0;
}
// Highest minor version understood for each major this librr reads.
inline constexpr uint16_t max_minor_for(uint16_t major) { return major == 1 ? 0 : kVersionMinor; }
inline constexpr bool is_readable_version(uint16_t major, uint16_t minor) {
  return major >= kOldestVersionMajor && major <= kVersionMajor && minor <= max_minor_for(major);
}

inline constexpr uint32_t kFlagMac = 1u << 0;
inline constexpr uint32_t kFlagEncrypted = 1u << 1;
inline constexpr uint32_t kKnownFileFlags = kFlagMac | kFlagEncrypted;

// Fixed part of the file header before the creator string, and its bounds.
inline constexpr size_t kFileHeaderFixedSize = 60;
inline constexpr size_t kFileHeaderMinSize = kFileHeaderFixedSize + 4 + 8;
inline constexpr size_t kFileHeaderMaxSize = 4096;
inline constexpr size_t kFingerprintSize = 8;

inline constexpr std::array<uint8_t, 4> kChunkMagic = {'R', 'R', 'C', 'K'};
inline constexpr size_t kChunkHeaderSize = 168;  // the fixed layout (before 2.5)
inline constexpr size_t kChunkMacOffset = 128;   // the MAC covers header bytes [0, 128) + payload
// The compact layout (2.5): magic, size byte, 12 varints, payload checksum,
// previous-header hash, the MAC only in MAC'd logs, header checksum.
inline constexpr size_t kCompactChunkHeaderMinSize = 4 + 1 + 12 + 8 + 32 + 8;
inline constexpr size_t kCompactChunkHeaderMaxSize = 4 + 1 + 12 * 10 + 8 + 32 + 32 + 8;

// How a file's chunk headers are laid out (FileHeader::chunk_layout()).
// Before 2.5 every header is 168 bytes with a MAC field, zero when unkeyed;
// an idle guest seals a chunk every 10 s, so those bytes were a third of its
// log. From 2.5 the integers are varints, the last position a delta from the
// first, and the MAC field exists only in MAC'd logs: ~70 bytes unkeyed.
struct ChunkLayout {
  bool compact = false;
  bool mac = false;
  size_t min_size() const { return compact ? kCompactChunkHeaderMinSize : kChunkHeaderSize; }
  size_t max_size() const { return compact ? kCompactChunkHeaderMaxSize : kChunkHeaderSize; }
};
inline constexpr uint32_t kChunkFlagFinal = 1u << 0;
inline constexpr uint32_t kKnownChunkFlags = kChunkFlagFinal;

// Hard caps, checked before any allocation a header field could drive.
inline constexpr uint32_t kMaxRecordSize = 32u << 20;
inline constexpr uint32_t kMaxRawLength = 64u << 20;
inline constexpr uint32_t kMaxStoredLength = kMaxRawLength + (kMaxRawLength >> 7) + 4096;
inline constexpr size_t kRecordFrameSize = 4;  // u32 length before each record
// The u32 length framing the record at `offset` (the caller checked that
// kRecordFrameSize bytes are there). Little-endian on the wire, as ByteReader.
inline uint32_t record_length_at(std::span<const uint8_t> raw, size_t offset) {
  uint32_t len;
  std::memcpy(&len, raw.data() + offset, sizeof len);
  return len;
}

struct FileHeader {
  uint16_t version_major = kVersionMajor;
  uint16_t version_minor = kVersionMinor;
  // Chunk payloads hold compact records (format 2) rather than u32-framed ones.
  bool compact_records() const { return version_major >= 2; }
  // ... in which clock samples may be deltas (format 2.7).
  bool clock_deltas() const { return has_clock_deltas(version_major, version_minor); }
  // Whether chunk `sequence`'s frame has the previous chunk's payload as its prefix.
  bool chunk_has_prefix(uint64_t sequence) const {
    return logfmt::chunk_has_prefix(version_major, version_minor, sequence);
  }
  uint32_t flags = 0;
  std::array<uint8_t, kFingerprintSize> key_fingerprint{};
  std::array<uint8_t, StreamEncryptor::kHeaderSize> stream_header{};
  uint64_t created_unix_ns = 0;
  std::string creator;

  ChunkLayout chunk_layout() const {
    return {version_major == 2 && version_minor >= kCompactChunkHeaderMinor,
            (flags & kFlagMac) != 0};
  }
  std::vector<uint8_t> encode() const;
  // Reads the declared total size from the first 16 bytes (0 if they are
  // not a plausible header start).
  static size_t declared_size(std::span<const uint8_t> first16);
  // Decodes exactly `bytes` (the declared size); throws FormatError with
  // the reason on a bad magic, checksum, version or flags.
  static FileHeader decode(std::span<const uint8_t> bytes);
};

struct ChunkHeader {
  uint32_t flags = 0;
  uint64_t sequence = 0;
  uint64_t first_record_index = 0;
  uint32_t record_count = 0;
  uint32_t raw_length = 0;
  uint32_t stored_length = 0;
  Position first;
  Position last;
  uint64_t payload_checksum = 0;
  Digest prev_hash{};
  Digest mac{};
  // Bytes of the encoded header (set by encode and decode): the payload
  // follows it.
  uint32_t header_size = 0;

  bool final() const { return flags & kChunkFlagFinal; }
  // Complete header including its trailing checksum; sets header_size.
  std::vector<uint8_t> encode(const ChunkLayout& layout);
  // Decodes the header at the start of `bytes`, which may run on past it
  // (a read of layout.max_size() bytes). Throws FormatError on a bad magic,
  // size, checksum, unknown flags or lengths above the caps.
  static ChunkHeader decode(std::span<const uint8_t> bytes, const ChunkLayout& layout);
  // The size a header starting with `bytes` declares (the compact layout's
  // size byte), or 0 when fewer than 5 bytes are there.
  static size_t declared_size(std::span<const uint8_t> bytes, const ChunkLayout& layout);
};

// Keyed BLAKE2b over the encoded header's bytes before its MAC field, then
// the payload.
Digest chunk_mac(const Key& key, std::span<const uint8_t> encoded_header, const ChunkLayout& layout,
                 std::span<const uint8_t> payload);

std::array<uint8_t, kFingerprintSize> fingerprint_bytes(const Key& key);

}  // namespace librr::logfmt
