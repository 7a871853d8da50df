#include "posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "librr/deferred_sync.h"
#include "librr/error.h"

namespace librr {

PosixFile PosixFile::open_read(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open " + path.string());
  return PosixFile(fd, path);
}

PosixFile PosixFile::create_exclusive(const std::filesystem::path& path, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw_errno("cannot create " + path.string());
  return PosixFile(fd, path);
}

PosixFile::PosixFile(PosixFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

PosixFile& PosixFile::operator=(PosixFile&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

PosixFile::~PosixFile() { close(); }

void PosixFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

uint64_t PosixFile::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno("cannot stat " + path_.string());
  return static_cast<uint64_t>(st.st_size);
}

void PosixFile::read_exact_at(void* buf, size_t n, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + path_.string() + " at offset " + std::to_string(offset + done));
    }
    if (r == 0)
      throw FormatError(path_.string() + ": unexpected end of file (needed " + std::to_string(n) +
                            " bytes at offset " + std::to_string(offset) + ")",
                        static_cast<int64_t>(offset + done));
    done += static_cast<size_t>(r);
  }
}

void PosixFile::write_all(const void* buf, size_t n) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write " + path_.string());
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void PosixFile::sync() {
  if (::fsync(fd_) != 0) throw_errno("cannot fsync " + path_.string());
}

void sync_path(const std::filesystem::path& path) {
  const bool directory = std::filesystem::is_directory(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw_errno("cannot open " + path.string() + " to fsync it");
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) throw_errno("cannot fsync " + path.string());
}

std::filesystem::path directory_holding(const std::filesystem::path& path) {
  return path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
}

void sync_parent_directory(const std::filesystem::path& path) {
  sync_path(directory_holding(path));
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           DeferredSync* deferred) {
  std::filesystem::path temp = path;
  temp += ".tmp";
  std::filesystem::remove(temp);  // a leftover from a crash is stale by definition
  {
    PosixFile out = PosixFile::create_exclusive(temp);
    out.write_all(content.data(), content.size());
    if (!deferred) out.sync();
  }
  if (::rename(temp.c_str(), path.c_str()) != 0)
    throw_errno("cannot rename " + temp.string() + " to " + path.string());
  if (deferred)
    deferred->add(path);
  else
    sync_parent_directory(path);
}

}  // namespace librr
