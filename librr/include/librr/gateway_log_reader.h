#pragma once
// Reads frames back out of an rr-gateway output directory by digest
// (schemas/gateway-log.md): the index (index.sqlite, opened read-only) gives
// segment and pcapng offset, the segment is decompressed (the last one is
// cached) and the Enhanced Packet Block at that offset is parsed and checked
// against the digest. This is how a replaying rr-vmm resolves a reference to a
// frame the gateway logged; rr-gateway writes the same names.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"

namespace librr {

// File names inside a gateway log directory.
inline constexpr const char* kGatewayIndexFileName = "index.sqlite";
std::string gateway_segment_file_name(uint64_t number);          // seg-000042.pcapng.zst
std::string gateway_segment_partial_file_name(uint64_t number);  // seg-000042.pcapng.zst.part

class GatewayLogReader {
 public:
  // Throws Error if the directory has no readable index.
  explicit GatewayLogReader(const std::filesystem::path& directory);
  ~GatewayLogReader();
  GatewayLogReader(const GatewayLogReader&) = delete;
  GatewayLogReader& operator=(const GatewayLogReader&) = delete;

  // The captured bytes of the first logged frame with this digest, or nothing
  // if the index has none. Throws FormatError (file, offset) if the
  // index points at something that is not that frame.
  std::optional<std::vector<uint8_t>> find(const Digest& digest);

 private:
  struct Index;  // the SQLite connection and lookup statement
  const std::vector<uint8_t>& segment_bytes(uint64_t segment);

  std::filesystem::path directory_;
  std::unique_ptr<Index> index_;
  uint64_t cached_segment_ = 0;
  std::vector<uint8_t> cached_bytes_;
};

}  // namespace librr
