#pragma once
// Reads frames back out of an rr-gateway output directory by digest: the
// index (index.sqlite, opened read-only) gives segment and pcapng offset, the
// segment is decompressed (the last one is cached) and the Enhanced Packet
// Block at that offset is parsed and checked against the digest. This is how a
// replaying rr-vmm resolves a reference to a frame the gateway logged.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "librr/crypto.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gateway {

class LoggedFrameReader {
 public:
  // Throws librr::Error if the directory has no readable index.
  explicit LoggedFrameReader(const std::filesystem::path& directory);
  ~LoggedFrameReader();
  LoggedFrameReader(const LoggedFrameReader&) = delete;
  LoggedFrameReader& operator=(const LoggedFrameReader&) = delete;

  // The captured bytes of the first logged frame with this digest, or nothing
  // if the index has none. Throws librr::FormatError (file, offset) if the
  // index points at something that is not that frame.
  std::optional<std::vector<uint8_t>> find(const librr::Digest& digest);

 private:
  const std::vector<uint8_t>& segment_bytes(uint64_t segment);

  std::filesystem::path directory_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* lookup_ = nullptr;
  uint64_t cached_segment_ = 0;
  std::vector<uint8_t> cached_bytes_;
};

}  // namespace gateway
