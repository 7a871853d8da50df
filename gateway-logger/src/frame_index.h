#pragma once
// SQLite index of every logged frame, keyed by digest. Schema and meaning of
// each column: schemas/gateway-log.md.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/gateway_log_reader.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gateway {

struct IndexedFrame {
  uint64_t segment = 0;
  uint64_t ordinal = 0;        // 0-based packet number inside the segment
  uint64_t pcapng_offset = 0;  // byte offset of the EPB in the decompressed segment
  uint64_t timestamp_ns = 0;   // capture time, ns since the Unix epoch
  std::string interface;
  uint32_t wire_length = 0;
  uint32_t captured_length = 0;
  librr::Digest digest{};  // BLAKE2b-256 of the captured bytes
  std::string direction;
};

inline constexpr const char* kIndexFileName = librr::kGatewayIndexFileName;

class FrameIndex {
 public:
  explicit FrameIndex(const std::filesystem::path& path);
  ~FrameIndex();
  FrameIndex(const FrameIndex&) = delete;
  FrameIndex& operator=(const FrameIndex&) = delete;

  void segment_opened(uint64_t segment, const std::string& file, uint64_t opened_ns);
  void segment_closed(uint64_t segment, const std::string& file, uint64_t closed_ns,
                      uint64_t frames, uint64_t pcapng_bytes, uint64_t compressed_bytes);
  // Inserts the rows in one transaction. Throws WriteError (e.g. SQLITE_FULL).
  void insert(const std::vector<IndexedFrame>& frames);

  // Reading, for tests and tools.
  std::vector<IndexedFrame> all_frames() const;
  uint64_t count_digest(const librr::Digest& digest) const;

 private:
  void exec(const char* sql) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

}  // namespace gateway
