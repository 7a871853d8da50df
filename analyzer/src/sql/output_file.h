#pragma once
// A file that appears under its final name only once it is complete: it is
// written as NAME.tmp, and commit() fsyncs and renames it. Until then the
// temporary file is removed when this object is destroyed (an exception),
// and also on SIGINT/SIGTERM/SIGHUP (Ctrl-C during a long export), so an
// interrupted export leaves neither NAME nor NAME.tmp. A SIGKILL can leave
// NAME.tmp, which the next export removes; NAME is never half-written.
#include <filesystem>

namespace analyzer::sql {

class AtomicOutputFile {
 public:
  explicit AtomicOutputFile(std::filesystem::path final_path);
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  const std::filesystem::path& temporary_path() const { return temporary_; }
  // fsync(NAME.tmp), rename to NAME, fsync the directory. Throws librr::SystemError.
  void commit();

 private:
  std::filesystem::path final_;
  std::filesystem::path temporary_;
  bool committed_ = false;
};

}  // namespace analyzer::sql
