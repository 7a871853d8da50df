#include "segment_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <regex>

#include "librr/gateway_log_reader.h"

namespace gateway {

namespace fs = std::filesystem;

// The names are part of the log format that librr's GatewayLogReader reads.
std::string segment_file_name(uint64_t number) { return librr::gateway_segment_file_name(number); }
std::string segment_partial_file_name(uint64_t number) {
  return librr::gateway_segment_partial_file_name(number);
}

uint64_t next_segment_number(const fs::path& directory) {
  static const std::regex kSegmentName(R"(seg-(\d+)\.pcapng\.zst(\.part)?)");
  uint64_t highest = 0;
  for (const auto& entry : fs::directory_iterator(directory)) {
    std::smatch match;
    std::string name = entry.path().filename().string();
    if (std::regex_match(name, match, kSegmentName))
      highest = std::max<uint64_t>(highest, std::stoull(match[1].str()));
  }
  return highest + 1;
}

SegmentFile::SegmentFile(const fs::path& directory, uint64_t number, int compression_level)
    : directory_(directory), number_(number), compressor_(compression_level) {
  auto path = partial_path();
  fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd_.valid())
    throw WriteError(
        fmt::format("cannot create segment {}: {}", path.string(), std::strerror(errno)), errno);
}

void SegmentFile::write_all(std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd_.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : ENOSPC;
      // Cut the partial zstd frame off so the file still decompresses up to the last full chunk.
      if (::ftruncate(fd_.get(), static_cast<off_t>(compressed_written_)) == 0)
        ::lseek(fd_.get(), static_cast<off_t>(compressed_written_), SEEK_SET);
      throw WriteError(fmt::format("write to {} at offset {} failed: {}", partial_path().string(),
                                   compressed_written_ + done, std::strerror(error)),
                       error);
    }
    done += static_cast<size_t>(n);
  }
  compressed_written_ += data.size();
}

void SegmentFile::flush() {
  if (pending_.empty()) return;
  compressed_.clear();
  compressor_.compress_append(pending_, compressed_);
  write_all(compressed_);
  pending_.clear();
}

fs::path SegmentFile::close() {
  flush();
  if (::fsync(fd_.get()) != 0)
    throw WriteError(
        fmt::format("fsync of {} failed: {}", partial_path().string(), std::strerror(errno)),
        errno);
  fd_.reset();
  auto final_path = directory_ / segment_file_name(number_);
  std::error_code ec;
  fs::rename(partial_path(), final_path, ec);
  if (ec)
    throw WriteError(fmt::format("cannot rename {} to {}: {}", partial_path().string(),
                                 final_path.string(), ec.message()),
                     ec.value());
  return final_path;
}

}  // namespace gateway
