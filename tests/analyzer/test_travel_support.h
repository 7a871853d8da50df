#pragma once
// Shared by the TimeTraveler and `rr-analyze at` tests: real recordings of
// the test guests, made once per test binary with the real rr-vmm.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

namespace travel_test {

namespace fs = std::filesystem;

inline bool kvm_usable() { return access("/dev/kvm", R_OK | W_OK) == 0; }

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

inline CommandResult run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
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

// Recordings made with `rr-vmm record`, kept for the whole test binary
// (recording takes seconds; every test reads them, none modifies them).
class Recordings {
 public:
  static Recordings& get() {
    static Recordings instance;
    return instance;
  }
  // The recording of `guest_args` (e.g. "--guest ticks --append ticks=8"),
  // recorded on first use. Fails the test if rr-vmm fails.
  fs::path of(const std::string& name, const std::string& guest_args) {
    auto it = made_.find(name);
    if (it != made_.end()) return it->second;
    const fs::path rec = dir_ / name;
    const CommandResult result =
        run_command("RR_GUEST_DIR=" + std::string(RR_BINARY_DIR) + "/guests " +
                    std::string(RR_BINARY_DIR) + "/bin/rr-vmm record --out " + rec.string() +
                    " --serial-in none " + guest_args + " >/dev/null </dev/null");
    EXPECT_EQ(result.exit_code, 0) << result.output;
    made_[name] = rec;
    return rec;
  }
  const fs::path& dir() const { return dir_; }

 private:
  Recordings() {
    char pattern[] = "/tmp/rr-travel-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  ~Recordings() { fs::remove_all(dir_); }
  fs::path dir_;
  std::map<std::string, fs::path> made_;
};

// Kernel timer interrupts at CPL0 and CPL3, a few hundred landmarks.
inline fs::path ticks_recording() {
  return Recordings::get().of("ticks", "--guest ticks --append ticks=8");
}
// Long native CPL3 loops stopped asynchronously by the timer.
inline fs::path spin3_recording() {
  return Recordings::get().of("spin3", "--guest spin3 --append iters=8");
}

#define SKIP_WITHOUT_KVM() \
  if (!travel_test::kvm_usable()) GTEST_SKIP() << "/dev/kvm is not usable here: cannot replay"

}  // namespace travel_test
