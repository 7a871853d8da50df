#pragma once
// The RecordReplay fixture: runs the real rr-vmm binary on real KVM guests
// (record, replay three times) and reads, edits and rewrites recordings' logs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "librr/log.h"
#include "librr/recording.h"

namespace rr_test {

namespace fs = std::filesystem;

inline std::string rr_vmm() { return std::string(RR_BINARY_DIR) + "/bin/rr-vmm"; }

inline bool kvm_usable() { return access("/dev/kvm", R_OK | W_OK) == 0; }

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs rr-vmm with stdout and stderr to files; returns the exit status.
// The number `pattern`'s one capture group finds in `text` (rr-vmm's
// summaries: "(\\d+) found by a search at record"); UINT64_MAX if none.
inline uint64_t number_in(const std::string& text, const std::string& pattern) {
  std::smatch match;
  if (!std::regex_search(text, match, std::regex(pattern))) return UINT64_MAX;
  return std::stoull(match[1].str());
}

inline int run_vmm(const std::string& args, const fs::path& out, const fs::path& err) {
  const std::string command = "RR_GUEST_DIR=" + std::string(RR_BINARY_DIR) + "/guests " + rr_vmm() +
                              " " + args + " >" + out.string() + " 2>" + err.string() +
                              " </dev/null";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class RecordReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_usable()) GTEST_SKIP() << "/dev/kvm is not usable here: cannot run guests";
    char pattern[] = "/tmp/rr-record-test-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Records `args` into `rec` (record's stderr in the failure message).
  ::testing::AssertionResult recorded(const fs::path& rec, const std::string& args) {
    if (run_vmm("record --out " + rec.string() + " " + args, dir_ / "record.out",
                dir_ / "record.err") == 0)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "rr-vmm record " << args << ": " << read_file(dir_ / "record.err");
  }

  // Records `guest_args`, then replays three times; every replay must be
  // faithful and print exactly what the recorded run printed. Unless the
  // arguments choose otherwise, with a state digest every 100 ms of guest
  // time rather than every 10 s (a hash of the non-zero pages each): a divergence that a
  // later memory delta would rewrite then fails the test where it starts (a
  // Linux guest once had one that only such digests showed).
  void record_and_replay_three_times(const std::string& name, const std::string& guest_args) {
    const fs::path rec = dir_ / name;
    const std::string digests = guest_args.find("--digest-interval-ms") == std::string::npos
                                    ? " --digest-interval-ms 100"
                                    : "";
    const int recorded = run_vmm("record --out " + rec.string() + " " + guest_args + digests,
                                 dir_ / "record.out", dir_ / "record.err");
    ASSERT_EQ(recorded, 0) << read_file(dir_ / "record.err");
    const std::string expected = read_file(dir_ / "record.out");
    ASSERT_NE(expected.find("RESULT"), std::string::npos) << expected;
    for (int i = 0; i < 3; ++i) {
      const int replayed =
          run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err");
      const std::string err = read_file(dir_ / "replay.err");
      ASSERT_EQ(replayed, 0) << err;
      EXPECT_NE(err.find("replay faithful"), std::string::npos) << err;
      EXPECT_EQ(read_file(dir_ / "replay.out"), expected) << "replay " << i;
    }
  }

  // Counts records of each type in a recording's log.
  librr::VerifyReport log_report(const fs::path& rec) {
    librr::RecordingDir dir = librr::RecordingDir::open(rec);
    librr::LogReader reader(dir.log_path());
    return reader.verify();
  }

  // Every record of a recording's log, in order.
  static std::vector<librr::Event> read_log(const fs::path& rec) {
    librr::LogReader reader(librr::RecordingDir::open(rec).log_path());
    std::vector<librr::Event> events;
    while (auto event = reader.next()) events.push_back(std::move(*event));
    return events;
  }

  // Replaces a recording's log with `events`, with valid checksums and hash
  // chain (what an attacker without the MAC key, or a torn write, can leave).
  static void rewrite_log(const fs::path& rec, const std::vector<librr::Event>& events) {
    const fs::path log = librr::RecordingDir::open(rec).log_path();
    fs::remove(log);
    fs::remove(librr::index_path_for(log));
    librr::LogWriter writer(log);
    for (const auto& event : events) writer.append(event);
    writer.close();
  }

  // Replays `rec` and expects a refusal (exit status 1) whose report names `what`.
  void expect_replay_fails_naming(const fs::path& rec, const std::string& what) {
    const int replayed =
        run_vmm("replay " + rec.string(), dir_ / "replay.out", dir_ / "replay.err");
    const std::string err = read_file(dir_ / "replay.err");
    EXPECT_EQ(replayed, 1) << err;
    EXPECT_NE(err.find(what), std::string::npos) << err;
  }

  fs::path dir_;
};

inline uint64_t count(const librr::VerifyReport& report, librr::EventType type) {
  return report.counts_by_type[static_cast<size_t>(type) - 1];
}

}  // namespace rr_test
