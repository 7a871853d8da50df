#pragma once
// Running the real rr-analyze from tests: shared by the travel, `at`,
// profile and OS-model tests (the SQL tests capture stdout and stderr apart,
// see test_sql_support.h).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

namespace analyzer_test {

namespace fs = std::filesystem;

inline bool kvm_usable() { return access("/dev/kvm", R_OK | W_OK) == 0; }

struct CommandResult {
  int exit_code;
  std::string output;  // stdout (and stderr unless the command redirects it)
};

inline CommandResult run_command(const std::string& command) {
  // Braces keep a redirection inside `command` (2>/dev/null) in force.
  FILE* pipe = popen(("{ " + command + "; } 2>&1").c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

inline CommandResult rr_analyze(const std::string& args) {
  return run_command(std::string(RR_BINARY_DIR) + "/bin/rr-analyze " + args + " </dev/null");
}

inline fs::path guest_elf(const std::string& name) {
  return fs::path(RR_BINARY_DIR) / "guests" / (name + ".elf");
}

}  // namespace analyzer_test

#define SKIP_WITHOUT_KVM() \
  if (!analyzer_test::kvm_usable()) GTEST_SKIP() << "/dev/kvm is not usable here: cannot replay"
