#pragma once
// RAII file descriptor with the few operations librr's file formats need:
// positional reads that report short reads, complete writes, fsync, and an
// atomic whole-file replace. Internal to librr (not installed).
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace librr {

class PosixFile {
 public:
  static PosixFile open_read(const std::filesystem::path& path);
  // Fails with SystemError (EEXIST) instead of replacing an existing file.
  static PosixFile create_exclusive(const std::filesystem::path& path, unsigned mode = 0644);

  PosixFile(PosixFile&& other) noexcept;
  PosixFile& operator=(PosixFile&& other) noexcept;
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;
  ~PosixFile();

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const;
  // Reads exactly `n` bytes at `offset`; a short read (file shrank or ends
  // early) throws FormatError naming the file and offset.
  void read_exact_at(void* buf, size_t n, uint64_t offset) const;
  void write_all(const void* buf, size_t n);
  void sync();
  void close();

 private:
  PosixFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::filesystem::path path_;
};

// fsyncs the file or directory at `path` (opened read-only; Linux syncs the
// inode's data whichever descriptor asks). Throws SystemError naming it.
void sync_path(const std::filesystem::path& path);
// The directory holding `path` ("." for a bare name).
std::filesystem::path directory_holding(const std::filesystem::path& path);
// fsyncs the directory holding `path`: a name just created there is durable.
void sync_parent_directory(const std::filesystem::path& path);

class DeferredSync;

// Replaces `path` with `content` so that a crash leaves either the old or the
// new file, never a mix: write a temporary file beside it, fsync, rename over
// `path`, fsync the directory. With `deferred`, for a file that did not exist
// (nothing old to keep): readers still never see it half written, and both
// fsyncs are left to `deferred`.
void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           DeferredSync* deferred = nullptr);

}  // namespace librr
