#pragma once
// Helpers of the SQL export/query tests: running the real rr-analyze and
// rr-vmm binaries, temporary directories, and real recordings of the test
// guests made once per test binary run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "librr/recording.h"
#include "librr/snapshot.h"

namespace sql_test {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Quotes one argument for /bin/sh.
inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/rr-sql-test-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs a shell command line with stdout and stderr captured separately.
inline CommandResult run_shell(const std::string& command_line) {
  TempDir tmp;
  const std::string command = command_line + " >" + (tmp.path() / "out").string() + " 2>" +
                              (tmp.path() / "err").string() + " </dev/null";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(tmp.path() / "out"),
          read_file(tmp.path() / "err")};
}

// A recording directory written with librr alone (no KVM): a 64 KiB snapshot
// of zeros and its manifest; the caller writes the log.
inline librr::RecordingDir create_synthetic_recording(const fs::path& where) {
  librr::RecordingDir dir = librr::RecordingDir::create(where);
  std::vector<uint8_t> memory(64 * 1024, 0);
  librr::SnapshotWriter snapshot(dir.snapshot_path());
  snapshot.add_memory("ram", 0, memory.data(), memory.size());
  dir.manifest().snapshot_digest = librr::to_hex(snapshot.finish());
  dir.manifest().tools.vmm_name = "test";
  dir.write_manifest();
  return dir;
}

inline std::string rr_analyze() { return std::string(RR_BINARY_DIR) + "/bin/rr-analyze"; }
inline std::string rr_vmm() { return std::string(RR_BINARY_DIR) + "/bin/rr-vmm"; }
inline fs::path guest_dir() { return fs::path(RR_BINARY_DIR) / "guests"; }

inline CommandResult analyze(const std::string& args) {
  return run_shell(rr_analyze() + " " + args);
}

// Why real guests cannot be recorded here, or "" when they can.
inline std::string why_no_guests() {
  if (access("/dev/kvm", R_OK | W_OK) != 0) return "/dev/kvm is not usable here";
  if (access(rr_vmm().c_str(), X_OK) != 0) return rr_vmm() + " is not built";
  if (!fs::exists(guest_dir() / "demo.elf")) return "the test guests are not built";
  return "";
}

struct Recorded {
  fs::path recording;
  int exit_code = -1;
  std::string console;  // what `rr-vmm record` printed on stdout
  std::string err;
};

// Records a test guest with the real rr-vmm into `where`.
inline Recorded record_guest(const fs::path& where, const std::string& guest_args) {
  const CommandResult r = run_shell("RR_GUEST_DIR=" + guest_dir().string() + " " + rr_vmm() +
                                    " record --out " + where.string() + " " + guest_args);
  return {where, r.exit_code, r.out, r.err};
}

}  // namespace sql_test
