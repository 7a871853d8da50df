#pragma once
// One log segment: a pcapng stream compressed with zstd, written as
// `seg-NNNNNN.pcapng.zst.part` and renamed to `seg-NNNNNN.pcapng.zst` when it
// is closed cleanly. Data is buffered and written in independently compressed
// zstd frames (concatenated frames are one valid .zst stream for `zstd -dc`).
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "librr/compress.h"
#include "librr/error.h"
#include "unique_fd.h"

namespace gateway {

// A write to the log failed (ENOSPC, EIO, ...). Logging must stop: the
// message names the file and the system error.
class WriteError : public librr::SystemError {
 public:
  WriteError(const std::string& what, int error_number)
      : librr::SystemError(what), error_number_(error_number) {}
  int error_number() const { return error_number_; }

 private:
  int error_number_;
};

std::string segment_file_name(uint64_t number);          // seg-000042.pcapng.zst
std::string segment_partial_file_name(uint64_t number);  // seg-000042.pcapng.zst.part
// The number following the highest segment (closed or partial) in `directory`, 1 if none.
uint64_t next_segment_number(const std::filesystem::path& directory);

class SegmentFile {
 public:
  SegmentFile(const std::filesystem::path& directory, uint64_t number, int compression_level);
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;

  uint64_t number() const { return number_; }
  // Uncompressed pcapng bytes so far: the offset of the next block.
  uint64_t pcapng_size() const { return pcapng_size_; }
  uint64_t compressed_bytes_written() const { return compressed_written_; }
  // Gives access to the pending (uncompressed) buffer so that blocks are encoded in place.
  std::vector<uint8_t>& pending() { return pending_; }
  void note_appended(size_t bytes) { pcapng_size_ += bytes; }
  size_t pending_size() const { return pending_.size(); }

  // Compresses and writes the pending bytes. Throws WriteError; on failure the
  // file is cut back to the last complete zstd frame so it stays decodable.
  void flush();
  // Flushes, fsyncs and renames the .part file to its final name.
  std::filesystem::path close();
  std::filesystem::path partial_path() const {
    return directory_ / segment_partial_file_name(number_);
  }

 private:
  void write_all(std::span<const uint8_t> data);

  std::filesystem::path directory_;
  uint64_t number_;
  UniqueFd fd_;
  librr::ZstdCompressor compressor_;
  std::vector<uint8_t> pending_;
  std::vector<uint8_t> compressed_;
  uint64_t pcapng_size_ = 0;
  uint64_t compressed_written_ = 0;
};

}  // namespace gateway
