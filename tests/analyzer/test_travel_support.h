#pragma once
// Shared by the TimeTraveler and `rr-analyze at` tests: real recordings of
// the test guests, made once per test binary with the real rr-vmm.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "librr/events.h"
#include "machine/vcpu_state.h"
#include "test_command_support.h"
#include "travel/time_traveler.h"

namespace analyzer {
// gtest prints position names as their text.
inline void PrintTo(const PositionName& name, std::ostream* out) { *out << name.to_string(); }
}  // namespace analyzer

namespace travel_test {

namespace fs = std::filesystem;

using analyzer_test::CommandResult;
using analyzer_test::guest_elf;
using analyzer_test::kvm_usable;
using analyzer_test::rr_analyze;
using analyzer_test::run_command;

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
// Whether an async stop is in user mode: a kernel-return stop (log format
// 2.8) always is and logs no state, a searched stop of format 2.9 never is
// (no state either); the others by their logged CS.
inline bool stops_in_user_mode(const librr::AsyncPosition& async) {
  if (std::holds_alternative<librr::KernelReturn>(async.memory)) return true;
  if (std::holds_alternative<librr::SearchedStop>(async.memory)) return false;
  librr::ByteReader in(async.vcpu_state, "async vCPU state");
  return (vmm::VcpuState::load(in).sregs.cs.selector & 3) == 3;
}

inline fs::path ticks_recording() {
  return Recordings::get().of("ticks", "--guest ticks --append ticks=8");
}
// Long native CPL3 loops stopped asynchronously by the timer.
inline fs::path spin3_recording() {
  return Recordings::get().of("spin3", "--guest spin3 --append iters=8");
}

}  // namespace travel_test
