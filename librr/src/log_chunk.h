#pragma once
// Internal: reading and verifying one chunk of a log at a time. Every check
// a chunk must pass lives here, in the order the format document gives, so
// that sequential reads, seeks and index rebuilds judge chunks identically.
#include <filesystem>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "librr/crypto.h"
#include "librr/log.h"
#include "log_format.h"

namespace librr::logchunk {

// What the chunk before this one promised: the chain link and counters.
struct Expectation {
  uint64_t sequence = 0;
  uint64_t offset = 0;
  uint64_t first_record_index = 0;
  Digest prev_hash{};
  std::optional<Position> min_position;  // last position of the previous chunk
};

struct LoadedChunk {
  logfmt::ChunkHeader header;
  std::vector<uint8_t> header_bytes;  // as in the file (the MAC covers them)
  Digest header_hash{};
  uint64_t end_offset = 0;
  // The chunk's framed records (u32 length + record; format 2's compact
  // records are expanded to this on load), every one already
  // checked, still encoded: the reader decodes each when iteration reaches
  // it. Points into the source's reused buffer, so it is valid until the
  // source loads another chunk; empty when only the header was checked.
  std::span<const uint8_t> records;
};

using LoadResult = std::variant<LoadedChunk, LogProblem>;

class ChunkSource {
 public:
  ChunkSource(int fd, std::filesystem::path path, uint64_t file_size,
              const logfmt::FileHeader& file_header, const std::optional<Key>& key);

  // Header-level checks only (checksum, chain, counters, fits in the file):
  // cheap, used to rebuild the index.
  LoadResult load_header(const Expectation& expect);
  // Every check, then decrypts, decompresses and decodes the records.
  // `index` lets encrypted logs replay the stream up to this chunk.
  LoadResult load(const Expectation& expect, const std::vector<ChunkIndexEntry>& index);

  // Reads and checksums the header at `offset` (for seeks: the chain link
  // to the chunk before the target).
  std::optional<logfmt::ChunkHeader> read_header_at(uint64_t offset, Digest* hash);

  uint64_t file_size() const { return file_size_; }

 private:
  LogProblem problem(LogProblemKind kind, const Expectation& at, std::string message) const;
  std::vector<uint8_t> read_header_bytes(uint64_t offset);
  std::optional<LogProblem> decrypt_upto(uint64_t sequence,
                                         const std::vector<ChunkIndexEntry>& index,
                                         const Expectation& at);
  // The stored payload's checks against its header: checksum, then the MAC
  // (over `header_bytes` and the payload) when the log is keyed. The reason
  // it fails, if it does.
  std::optional<std::pair<LogProblemKind, std::string>> payload_refusal(
      std::span<const uint8_t> header_bytes, const logfmt::ChunkHeader& h,
      std::span<const uint8_t> payload) const;
  // Makes prefix_ the compact payload of chunk `sequence` - 1 (format 2.7:
  // that chunk's frame is the prefix of this one's), decompressing the chunks
  // from the last key chunk on; for an encrypted log through the decryptor,
  // which it leaves at `sequence`.
  std::optional<LogProblem> load_prefix(uint64_t sequence,
                                        const std::vector<ChunkIndexEntry>& index,
                                        const Expectation& at);
  std::optional<LogProblem> check_records(const logfmt::ChunkHeader& h,
                                          std::span<const uint8_t> raw,
                                          const Expectation& at) const;

  int fd_;
  std::filesystem::path path_;
  uint64_t file_size_;
  const logfmt::FileHeader& file_header_;
  logfmt::ChunkLayout layout_;
  const std::optional<Key>& key_;
  std::optional<StreamDecryptor> decryptor_;
  uint64_t decrypt_next_ = 0;  // sequence number the decryptor expects next
  // Reused for every chunk: no allocation or page faults per chunk.
  std::vector<uint8_t> payload_, decrypted_, raw_;
  std::vector<uint8_t> expanded_;  // format 2: the compact records in u32 framing
  // Format 2.7: the last decompressed payload, the next chunk's zstd prefix.
  std::vector<uint8_t> prefix_;
  std::optional<uint64_t> prefix_sequence_;
};

}  // namespace librr::logchunk
