// A real crash: a child process writes records as fast as it can and is
// killed with SIGKILL at a random moment. The log must hold a verified prefix
// of what the child generated, cut only at a chunk boundary or a torn tail.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "test_log_util.h"

using namespace logtest;

namespace {

// make_event's mix plus, every 8th record, 16 KiB of incompressible input:
// multi-megabyte chunk writes give SIGKILL a real chance to tear one.
Event kill_event(uint64_t i) {
  constexpr size_t kBig = 16 * 1024;
  static const std::vector<uint8_t> pool = [] {
    std::vector<uint8_t> p(1 << 20);
    std::mt19937_64 rng(99);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    return p;
  }();
  if (i % 8 != 5) return make_event(i);
  size_t at = (i * 7919) % (pool.size() - kBig);
  return Input{event_position(make_event(i)), "net0",
               std::vector<uint8_t>(pool.begin() + at, pool.begin() + at + kBig)};
}

[[noreturn]] void child_write_forever(const std::filesystem::path& path, Mode m) {
  try {
    auto o = writer_options(m, 4 << 20);
    o.chunk_interval = std::chrono::milliseconds(20);
    LogWriter w(path, o);
    for (uint64_t i = 0;; ++i) w.append(kill_event(i));
  } catch (...) {
    _exit(3);
  }
}

}  // namespace

TEST(LogKill, SigkillMidRecordingLeavesARecoverablePrefix) {
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  int torn = 0, clean_cut = 0;
  for (int round = 0; round < 9; ++round) {
    TempDir dir(/*prefer_tmpfs=*/round % 2 == 0);  // page cache of a disk fs, and tmpfs
    auto path = dir / "killed.log";
    Mode m = round % 3 == 0 ? Mode::plain : round % 3 == 1 ? Mode::mac : Mode::encrypted;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) child_write_forever(path, m);
    // Kill at a random moment after the first chunk reached the file: on a
    // loaded machine the child may get no CPU for the first few hundred ms.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    // A whole chunk, as a reader sees it: a file size past 32 KiB could be
    // the middle of the first chunk's write(), and a kill there left no
    // record (failed under load, 2 of 9 rounds).
    auto written = [&] {
      try {
        LogReader peek(path, reader_options(m, /*use_index=*/false));
        return peek.verify().chunk_count > 0;
      } catch (const Error&) {
        return false;  // no file or no complete file header yet
      }
    };
    while (!written() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 250));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited by itself with " << WEXITSTATUS(status);

    ASSERT_FALSE(std::filesystem::exists(index_path_for(path)));
    LogReader reader(path, reader_options(m));
    EXPECT_EQ(reader.index_status(), IndexStatus::rebuilt_missing);
    auto report = reader.verify();
    ASSERT_TRUE(report.problem) << report.to_string();
    EXPECT_FALSE(report.terminated);
    uint64_t size = std::filesystem::file_size(path);
    if (report.valid_bytes == size) {
      EXPECT_EQ(report.problem->kind, LogProblemKind::missing_end) << report.to_string();
      ++clean_cut;
    } else {
      EXPECT_EQ(report.problem->kind, LogProblemKind::torn_tail) << report.to_string();
      EXPECT_EQ(report.problem->offset, report.valid_bytes);
      ++torn;
    }
    EXPECT_GT(report.record_count, 0u) << "the child ran long enough to seal chunks";
    uint64_t i = 0;
    while (auto e = reader.next()) {
      ASSERT_EQ(*e, kill_event(i)) << "record " << i << " is not what the child wrote";
      ++i;
    }
    EXPECT_EQ(i, report.record_count);
    EXPECT_EQ(reader.chunk_index().size(), report.chunk_count);
    // The rebuilt index is written and then accepted.
    LogReader again(path, reader_options(m));
    EXPECT_EQ(again.index_status(), IndexStatus::loaded);
  }
  std::cout << "[ info ] kill -9 outcomes: " << torn << " torn tails, " << clean_cut
            << " cuts at a chunk boundary\n";
}
