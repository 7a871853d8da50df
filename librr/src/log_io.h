#pragma once
// Internal: the few POSIX file operations the log needs, with RAII and
// errors that name the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "librr/error.h"
#include "posix_file.h"

namespace librr::logio {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // close() reporting errors (a failed close can mean lost data on NFS).
  void close_checked(const std::string& what) {
    int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0) throw_errno("close " + what);
  }

 private:
  int fd_ = -1;
};

inline UniqueFd open_or_throw(const std::filesystem::path& path, int flags, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("cannot open " + path.string());
  return UniqueFd(fd);
}

inline uint64_t file_size(int fd, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("fstat " + path.string());
  return static_cast<uint64_t>(st.st_size);
}

// Fills `buf` from `offset`; returns fewer bytes only at end of file.
inline size_t pread_into(int fd, uint64_t offset, std::span<uint8_t> buf,
                         const std::filesystem::path& path) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t got =
        ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path.string() + " at offset " + std::to_string(offset + done));
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

// Reads up to `n` bytes at `offset`; returns fewer only at end of file.
inline std::vector<uint8_t> pread_upto(int fd, uint64_t offset, size_t n,
                                       const std::filesystem::path& path) {
  std::vector<uint8_t> buf(n);
  buf.resize(pread_into(fd, offset, buf, path));
  return buf;
}

// The first `n` bytes of `buf`, growing it if needed: a buffer reused for
// every chunk stops allocating (and zero-filling) once it fits the largest.
inline std::span<uint8_t> reuse_buffer(std::vector<uint8_t>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return {buf.data(), n};
}

// One write() call for the whole buffer; loops only if the kernel accepts
// part of it (signal, quota), so a crash tears at most the chunk in flight.
inline void write_all(int fd, std::span<const uint8_t> data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write " + path.string());
    }
    data = data.subspan(static_cast<size_t>(n));
  }
}

inline void fsync_or_throw(int fd, const std::filesystem::path& path) {
  if (::fsync(fd) != 0) throw_errno("fsync " + path.string());
}

// Makes a newly created directory entry durable.
inline void fsync_parent_dir(const std::filesystem::path& path) {
  const std::filesystem::path dir = directory_holding(path);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse directory fds
  ::fsync(fd);
  ::close(fd);
}

}  // namespace librr::logio
