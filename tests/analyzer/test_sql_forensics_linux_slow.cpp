// Slow (ctest -L slow): the real Linux guest recorded booting, exported with
// the forensic tables. processes holds swapper (pid 0), init (1) and
// kthreadd (2) with their kernel threads; kernel_log is what the console
// printed, line for line over their common part; mounts and net_devices
// hold the rootfs and lo; process_events (the timeline passes, part of the
// default export) has the exec of /init before the end of the recording and
// swapper's creation of kthreadd before it.
#include <fstream>
#include <sstream>

#include "sql/sqlite.h"
#include "test_os_support.h"
#include "test_sql_queries.h"

namespace {

namespace fs = std::filesystem;
using analyzer::sql::Database;
using sql_test::query_int;
using sql_test::query_text;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One test: ctest runs every TEST in a process of its own, and each would
// record the boot again.
TEST(SqlForensicsLinux, RecordedBootExportsItsForensicTables) {
  SKIP_WITHOUT_KVM();
  auto start = std::chrono::steady_clock::now();
  const os_test::LinuxBootRecording rec;
  if (!rec.skip.empty()) GTEST_SKIP() << rec.skip;
  ASSERT_TRUE(rec.error.empty()) << rec.error;
  std::printf("record: %.0f s\n", seconds_since(start));
  const fs::path& dir = rec.dir;
  const fs::path& recording = rec.recording;

  const fs::path db_path = dir / "linux.sqlite";
  start = std::chrono::steady_clock::now();
  const auto exported = os_test::run_command(
      "RR_CACHE_DIR=" + (dir / "cache").string() + " " + RR_BINARY_DIR + "/bin/rr-analyze export " +
      recording.string() + " --db " + db_path.string() +
      // One timeline pass (process_create and exec) instead of four: a pass
      // replays the whole boot (docs/forensics.md, "Measured").
      " --timeline-kinds process_create,exec");
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  std::printf("export with forensics: %.0f s\n%s", seconds_since(start), exported.output.c_str());
  Database db(db_path, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "faithful") << query_text(
      db, "SELECT COALESCE((SELECT position || ': ' || message FROM divergences), '')");
  EXPECT_EQ(query_text(db, "SELECT forensics_os FROM recording"), "Linux");
  const std::string status = query_text(db, "SELECT forensics_status FROM recording");
  const std::string message = query_text(db, "SELECT forensics_message FROM recording");

  {
    SCOPED_TRACE("processes");
    EXPECT_EQ(query_text(db, "SELECT substr(name, 1, 7) FROM processes WHERE pid = 0"), "swapper");
    EXPECT_EQ(query_text(db, "SELECT name FROM processes WHERE pid = 1 AND alive_at_end"), "init");
    EXPECT_EQ(query_int(db, "SELECT parent FROM processes WHERE pid = 1"), 0);
    EXPECT_EQ(query_text(db, "SELECT name FROM processes WHERE pid = 2"), "kthreadd");
    EXPECT_EQ(query_int(db, "SELECT kernel_thread FROM processes WHERE pid = 2"), 1);
    // The kernel threads kthreadd started, all still there at the end.
    EXPECT_GT(query_int(db,
                        "SELECT COUNT(*) FROM processes WHERE parent = 2 AND kernel_thread "
                        "AND name LIKE 'kworker%'"),
              0);
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM processes WHERE uid != 0 OR gid != 0"), 0);
    // swapper was there from the first sample; init appeared later.
    EXPECT_LT(query_int(db, "SELECT first_seen_landmark FROM processes WHERE pid = 0"),
              query_int(db, "SELECT first_seen_landmark FROM processes WHERE pid = 2"));
    EXPECT_LT(query_int(db, "SELECT first_seen_landmark FROM processes WHERE pid = 2"),
              query_int(db, "SELECT end_landmark FROM recording"));
  }
  {
    SCOPED_TRACE("kernel_log against the console");
    const std::vector<std::string> console = os_test::console_lines(rec.console);
    auto records = db.prepare("SELECT sequence, level, line FROM kernel_log ORDER BY sequence");
    size_t at = 0, matched = 0, rows = 0;
    int64_t previous = -1;
    while (records.step()) {
      ++rows;
      EXPECT_EQ(records.column_int(0), previous + 1) << "a gap in the ring buffer";
      previous = records.column_int(0);
      const auto lines = os_test::console_lines(std::string(records.column_text(2)));
      const bool printed =
          at + lines.size() <= console.size() &&
          std::equal(lines.begin(), lines.end(), console.begin() + static_cast<long>(at));
      if (printed) {
        at += lines.size();
        matched += lines.size();
        continue;
      }
      // Debug records the console suppressed under the loglevel of the moment.
      EXPECT_GE(records.column_int(1), 7)
          << "not on the console at line " << at + 1 << ": " << records.column_text(2);
    }
    EXPECT_EQ(at, console.size()) << "console lines the log lacks, from line " << at + 1;
    EXPECT_GT(matched, 50u);
    std::printf("kernel_log: %zu records, %zu console lines matched\n", rows, matched);
    // First-seen positions follow the sequence (sampling never goes back).
    EXPECT_EQ(query_int(db,
                        "SELECT COUNT(*) FROM kernel_log a JOIN kernel_log b ON b.sequence = "
                        "a.sequence + 1 WHERE (b.landmark, b.async_seq) < (a.landmark, "
                        "a.async_seq)"),
              0);
  }
  {
    SCOPED_TRACE("mounts and net_devices");
    EXPECT_EQ(query_text(db, "SELECT path || ' ' || type FROM mounts WHERE id = 1"), "/ rootfs");
    EXPECT_EQ(query_text(db,
                         "SELECT ifindex || ' ' || mtu FROM net_devices WHERE interface = "
                         "'lo'"),
              "1 65536");
  }
  {
    SCOPED_TRACE("process_events");
    EXPECT_EQ(status, "complete") << message;
    // The kernel's own exec of /init, as pid 1, before the end.
    EXPECT_EQ(query_int(db,
                        "SELECT COUNT(*) FROM process_events WHERE action = 'exec' AND path "
                        "= '/init' AND pid = 1 AND landmark < (SELECT end_landmark FROM "
                        "recording)"),
              1);
    // swapper (pid 0) created kthreadd (pid 2), before that exec; kthreadd
    // created the kernel threads.
    EXPECT_EQ(query_int(db,
                        "SELECT COUNT(*) FROM process_events c, process_events e WHERE "
                        "c.action = 'process_create' AND c.child_pid = 2 AND c.pid = 0 AND "
                        "e.action = 'exec' AND e.path = '/init' AND c.id < e.id"),
              1);
    EXPECT_GT(query_int(db,
                        "SELECT COUNT(*) FROM process_events WHERE action = 'process_create' "
                        "AND pid = 2 AND comm = 'kthreadd'"),
              3);
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM process_events WHERE error IS NOT NULL"), 0);
    // pid 1 was created by the kernel: the timeline saw it, so its row starts there.
    EXPECT_EQ(query_text(db, "SELECT first_seen_source FROM processes WHERE pid = 1"),
              "process_create");
    std::printf("process_events: %lld rows, file_events: %lld rows, net_events: %lld rows\n",
                static_cast<long long>(query_int(db, "SELECT COUNT(*) FROM process_events")),
                static_cast<long long>(query_int(db, "SELECT COUNT(*) FROM file_events")),
                static_cast<long long>(query_int(db, "SELECT COUNT(*) FROM net_events")));
  }
}

}  // namespace
