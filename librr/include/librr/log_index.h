#pragma once
// The chunk index kept beside a log ("<log>.idx"): where each chunk starts,
// so a reader can seek by record index or Position without scanning the log.
// It is a cache: the reader checks it against the log (file header hash and
// log size) and rebuilds it by scanning chunk headers when it is missing,
// corrupt or stale. The log alone is authoritative.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "librr/position.h"

namespace librr {

struct ChunkIndexEntry {
  uint64_t offset = 0;  // byte offset of the chunk header in the log
  uint64_t first_record_index = 0;
  uint32_t record_count = 0;
  Position first;
  friend bool operator==(const ChunkIndexEntry&, const ChunkIndexEntry&) = default;
};

struct LogIndex {
  std::array<uint8_t, 32> file_header_hash{};  // BLAKE2b of the log's file header
  uint64_t log_size = 0;                       // log size in bytes when indexed
  std::vector<ChunkIndexEntry> chunks;
  friend bool operator==(const LogIndex&, const LogIndex&) = default;
};

std::filesystem::path index_path_for(const std::filesystem::path& log_path);

// Writes atomically (temporary file + rename), so readers never see half an index.
void write_log_index(const std::filesystem::path& path, const LogIndex& index);

// nullopt when the file does not exist; throws FormatError when it is not a
// valid index file (corrupt, truncated, wrong version).
std::optional<LogIndex> read_log_index(const std::filesystem::path& path);

}  // namespace librr
