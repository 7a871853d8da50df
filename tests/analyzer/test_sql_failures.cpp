// What export and query do when things go wrong: a damaged log is refused
// naming its chunk (exit 1) and leaves no database; an export interrupted by
// Ctrl-C or kill -9 never leaves a half-written FILE.
#include <signal.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "librr/log.h"
#include "librr/recording.h"
#include "librr/snapshot.h"
#include "test_sql_support.h"

using namespace sql_test;

namespace {

// A complete recording written with librr (no KVM needed): many small chunks.
fs::path make_synthetic_recording(const fs::path& where) {
  librr::RecordingDir dir = create_synthetic_recording(where);
  librr::LogWriterOptions options;
  options.chunk_bytes = 256;
  librr::LogWriter log(dir.log_path(), options);
  for (uint64_t landmark = 1; landmark <= 300; ++landmark) {
    log.append(librr::InterruptDelivery{{landmark, 0, 0}, 0x20, 0});
    if (landmark % 7 == 0) log.append(librr::Input{{landmark, 0, 0}, "serial0", {'x', '\n'}});
  }
  log.append(librr::EndOfRecording{{301, 0, 0}, "exit port", 0});
  log.close();
  return where;
}

void flip_byte(const fs::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  const char byte = static_cast<char>(f.get());
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(byte ^ 0x5a));
}

}  // namespace

TEST(SqlFailures, SyntheticRecordingExportsWithoutReplay) {
  TempDir tmp;
  const fs::path rec = make_synthetic_recording(tmp.path() / "rec");
  const CommandResult r = analyze("query " + rec.string() +
                                  " 'SELECT interrupt_count, input_count, replay_status FROM "
                                  "recording' --format csv --no-replay");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "interrupt_count,input_count,replay_status\r\n300,42,skipped\r\n");
}

TEST(SqlFailures, DamagedLogExitsOneNamingTheChunkAndWritesNothing) {
  TempDir tmp;
  const fs::path rec = make_synthetic_recording(tmp.path() / "rec");
  const librr::RecordingDir dir = librr::RecordingDir::open(rec);
  fs::remove(librr::index_path_for(dir.log_path()));
  flip_byte(dir.log_path(), fs::file_size(dir.log_path()) / 2);

  const fs::path db = tmp.path() / "out.sqlite";
  const CommandResult r =
      analyze("export " + rec.string() + " --db " + db.string() + " --no-replay");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("log damaged"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at chunk "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db));
  EXPECT_FALSE(fs::exists(db.string() + ".tmp"));

  const CommandResult q = analyze("query " + rec.string() + " 'SELECT 1' --no-replay");
  EXPECT_EQ(q.exit_code, 1) << q.err;
  EXPECT_NE(q.err.find("at chunk "), std::string::npos) << q.err;
  EXPECT_FALSE(fs::exists(rec / "analysis.sqlite"));
}

TEST(SqlFailures, MissingRecordingExitsOne) {
  TempDir tmp;
  const fs::path db = tmp.path() / "out.sqlite";
  const CommandResult r =
      analyze("export " + (tmp.path() / "nothing").string() + " --db " + db.string());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find((tmp.path() / "nothing").string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db));
}

namespace {

// Starts `rr-analyze export REC --db DB` in the background.
pid_t start_export(const fs::path& rec, const fs::path& db) {
  const pid_t child = fork();
  if (child == 0) {
    const int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    execl(rr_analyze().c_str(), "rr-analyze", "export", rec.c_str(), "--db", db.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

// Waits until `path` exists (the export has started writing); false after 20 s.
bool wait_for_file(const fs::path& path) {
  for (int i = 0; i < 2000; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST(SqlFailures, InterruptedExportLeavesNoFile) {
  const std::string why = why_no_guests();
  if (!why.empty()) GTEST_SKIP() << why << ": cannot record a guest long enough to interrupt";
  TempDir tmp;
  // spin3 with iters=4096 takes seconds to replay even on a quiet machine (iters=512
  // replayed in 0.3 s there): long enough to interrupt the export in the middle.
  const Recorded rec =
      record_guest(tmp.path() / "spin3", "--guest spin3 --serial-in none --append iters=4096");
  ASSERT_EQ(rec.exit_code, 0) << rec.err;

  for (const int signal_number : {SIGINT, SIGKILL}) {
    SCOPED_TRACE(strsignal(signal_number));
    const fs::path db = tmp.path() / ("out-" + std::to_string(signal_number) + ".sqlite");
    const auto started = std::chrono::steady_clock::now();
    const pid_t child = start_export(rec.recording, db);
    ASSERT_TRUE(wait_for_file(db.string() + ".tmp"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(child, signal_number);
    int status = 0;
    waitpid(child, &status, 0);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_TRUE(WIFSIGNALED(status))
        << "the export finished in " << seconds << " s before it could be interrupted";
    EXPECT_FALSE(fs::exists(db)) << "a half-written database was left";
    // Ctrl-C cleans up; kill -9 cannot, and the next export removes the leftover.
    if (signal_number == SIGINT) {
      EXPECT_FALSE(fs::exists(db.string() + ".tmp"));
    }
  }
  // The leftover of the killed export does not stop the next one.
  const fs::path db = tmp.path() / ("out-" + std::to_string(SIGKILL) + ".sqlite");
  const CommandResult r =
      analyze("export " + rec.recording.string() + " --db " + db.string() + " --no-replay");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(db));
  EXPECT_FALSE(fs::exists(db.string() + ".tmp"));
}
