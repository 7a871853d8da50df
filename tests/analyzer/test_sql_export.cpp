// rr-analyze export on real recordings of the test guests made with the real
// rr-vmm: table counts agree with `rr-analyze info --json`, serial_output is
// what the recorded run printed, inputs hold the serial input given, and the
// database is an ordinary SQLite file (read back here and by the sqlite3 CLI).
#include <nlohmann/json.hpp>

#include "librr/recorder.h"
#include "replay/replay_rules.h"
#include "sql/sqlite.h"
#include "test_log_edits.h"
#include "test_sql_queries.h"
#include "test_sql_support.h"

using namespace sql_test;
using analyzer::sql::Database;

namespace {

// Two real recordings shared by the tests below (recording takes seconds).
class SqlExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(why_no_guests());
    if (!skip_reason_->empty()) return;
    dir_ = new TempDir;
    demo_ = new Recorded(record_guest(dir_->path() / "demo", "--guest demo --serial-in none"));
    echo_input_ = new fs::path(fs::path(RR_SOURCE_DIR) / "tests/guests/serial-echo-input.txt");
    echo_ = new Recorded(record_guest(dir_->path() / "serial-echo",
                                      "--guest serial-echo --serial-in " + echo_input_->string()));
  }
  static void TearDownTestSuite() {
    delete demo_;
    delete echo_;
    delete echo_input_;
    delete dir_;
    delete skip_reason_;
  }
  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_ << ": cannot record guests";
    ASSERT_EQ(demo_->exit_code, 0) << demo_->err;
    ASSERT_EQ(echo_->exit_code, 0) << echo_->err;
  }

  // Exports `rec` into a fresh file and returns its path.
  fs::path export_db(const Recorded& rec, const std::string& name, const std::string& extra = "") {
    const fs::path db = dir_->path() / name;
    const CommandResult r =
        analyze("export " + rec.recording.string() + " --db " + db.string() + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(db));
    EXPECT_FALSE(fs::exists(db.string() + ".tmp"));
    return db;
  }

  static std::string* skip_reason_;
  static TempDir* dir_;
  static Recorded* demo_;
  static Recorded* echo_;
  static fs::path* echo_input_;
};

std::string* SqlExport::skip_reason_ = nullptr;
TempDir* SqlExport::dir_ = nullptr;
Recorded* SqlExport::demo_ = nullptr;
Recorded* SqlExport::echo_ = nullptr;
fs::path* SqlExport::echo_input_ = nullptr;

}  // namespace

TEST_F(SqlExport, TableCountsEqualInfoCounts) {
  for (const Recorded* rec : {demo_, echo_}) {
    SCOPED_TRACE(rec->recording.string());
    const fs::path path = export_db(*rec, rec->recording.filename().string() + "-counts.sqlite");
    const CommandResult info = analyze("info --json " + rec->recording.string());
    ASSERT_EQ(info.exit_code, 0) << info.err;
    const auto log = nlohmann::json::parse(info.out)["log"];
    const auto& by_type = log["records_by_type"];
    Database db(path, Database::Mode::kReadOnly);
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM recording"), 1);
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM interrupts"),
              by_type["InterruptDelivery"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM async_positions"),
              by_type["AsyncPosition"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM inputs"), by_type["Input"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM state_digests"),
              by_type["StateDigest"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT interrupt_count FROM recording"),
              by_type["InterruptDelivery"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT input_count FROM recording"), by_type["Input"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT end_of_recording_count FROM recording"),
              by_type["EndOfRecording"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT log_records FROM recording"), log["records"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT log_chunks FROM recording"), log["chunks"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT log_bytes FROM recording"), log["bytes"].get<int64_t>());
    EXPECT_EQ(query_int(db, "SELECT end_landmark FROM recording"),
              log["positions"]["duration_landmarks"].get<int64_t>());
    EXPECT_EQ(query_text(db, "SELECT last_position FROM recording"),
              log["positions"]["last"].get<std::string>());
    EXPECT_EQ(query_int(db, "SELECT terminated FROM recording"), 1);
    EXPECT_EQ(query_int(db, "SELECT exit_status FROM recording"), 0);
    EXPECT_EQ(query_text(db, "SELECT vmm_name FROM recording"), "rr-vmm");
    EXPECT_EQ(query_text(db, "SELECT replay_rules_version FROM recording"),
              vmm::ReplayRules::current().manifest_value());
    // Positions: the text form and the integer parts agree, and the log is in order.
    EXPECT_EQ(query_int(db,
                        "SELECT COUNT(*) FROM interrupts WHERE position != 'L' || landmark || "
                        "CASE async_seq WHEN 0 THEN '' ELSE '+a' || async_seq END"),
              0);
    // demo runs a timer (serial-echo does not): its interrupts are PIC vectors.
    if (rec == demo_) {
      EXPECT_GT(query_int(db, "SELECT COUNT(*) FROM interrupts WHERE vector >= 32"), 0);
    }
  }
}

TEST_F(SqlExport, SerialOutputIsWhatTheRecordedRunPrinted) {
  for (const Recorded* rec : {demo_, echo_}) {
    SCOPED_TRACE(rec->recording.string());
    const fs::path path = export_db(*rec, rec->recording.filename().string() + "-serial.sqlite");
    Database db(path, Database::Mode::kReadOnly);
    EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "faithful");
    EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM divergences"), 0);
    ASSERT_FALSE(rec->console.empty());
    EXPECT_EQ(query_text(db,
                         "SELECT group_concat(text, '') FROM (SELECT text FROM serial_output "
                         "ORDER BY line_number)"),
              rec->console);
    // One row per line, positions never go backwards.
    const auto newlines = std::count(rec->console.begin(), rec->console.end(), '\n');
    const int64_t lines = query_int(db, "SELECT COUNT(*) FROM serial_output");
    EXPECT_TRUE(lines == newlines || lines == newlines + 1) << lines << " vs " << newlines;
    EXPECT_EQ(query_int(db,
                        "SELECT COUNT(*) FROM serial_output a JOIN serial_output b ON "
                        "b.line_number = a.line_number + 1 WHERE (b.landmark, b.async_seq) < "
                        "(a.landmark, a.async_seq)"),
              0);
    EXPECT_GT(query_int(db, "SELECT MAX(landmark) FROM serial_output"), 0);
  }
}

// A log whose last state digest was edited (valid checksums): the export
// still succeeds, with the divergence in its table, in recording.replay_status
// and, with its message, on stderr.
TEST_F(SqlExport, ADivergingReplayIsNamedInTheTableAndOnStderr) {
  const fs::path copy = dir_->path() / "demo-edited";
  fs::copy(demo_->recording, copy, fs::copy_options::recursive);
  const uint64_t landmark = log_edits::corrupt_last_state_digest(copy);
  ASSERT_NE(landmark, 0u) << "the demo recording has no state digest";
  const fs::path db_path = dir_->path() / "demo-edited.sqlite";
  const CommandResult r =
      analyze("export " + copy.string() + " --db " + db_path.string() + " --no-forensics");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(db_path, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "diverged");
  EXPECT_EQ(query_int(db, "SELECT landmark FROM divergences"), static_cast<int64_t>(landmark));
  const std::string message = query_text(db, "SELECT message FROM divergences");
  EXPECT_NE(message.find("digest"), std::string::npos) << message;
  EXPECT_NE(r.err.find("rr-analyze: replay diverged: " + message), std::string::npos) << r.err;
}

TEST_F(SqlExport, SerialInputBytesAreTheInputGiven) {
  const fs::path path = export_db(*echo_, "echo-inputs.sqlite", "--no-replay");
  Database db(path, Database::Mode::kReadOnly);
  auto statement =
      db.prepare("SELECT data, length FROM inputs WHERE channel = 'serial0' ORDER BY record_index");
  std::string taken;
  while (statement.step()) {
    const auto blob = statement.column_blob(0);
    EXPECT_EQ(statement.column_type(0), SQLITE_BLOB);
    EXPECT_EQ(statement.column_int(1), static_cast<int64_t>(blob.size()));
    taken.append(blob.begin(), blob.end());
  }
  EXPECT_EQ(taken, read_file(*echo_input_));
  // --no-replay leaves the replay tables empty and says so.
  EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "skipped");
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM serial_output"), 0);
}

TEST_F(SqlExport, Sqlite3CliReadsTheDatabase) {
  if (access("/usr/bin/sqlite3", X_OK) != 0)
    GTEST_SKIP() << "the sqlite3 CLI is not installed (scripts/debian-packages.txt lists it)";
  const fs::path path = export_db(*demo_, "demo-cli.sqlite");
  const CommandResult integrity =
      run_shell("sqlite3 " + path.string() + " 'PRAGMA integrity_check'");
  ASSERT_EQ(integrity.exit_code, 0) << integrity.err;
  EXPECT_EQ(integrity.out, "ok\n");
  const CommandResult count =
      run_shell("sqlite3 " + path.string() + " 'SELECT COUNT(*) FROM interrupts'");
  ASSERT_EQ(count.exit_code, 0) << count.err;
  Database db(path, Database::Mode::kReadOnly);
  EXPECT_EQ(count.out, std::to_string(query_int(db, "SELECT COUNT(*) FROM interrupts")) + "\n");
  const CommandResult tables = run_shell("sqlite3 " + path.string() + " .tables");
  for (const char* table : {"recording", "interrupts", "inputs", "frames", "serial_output",
                            "checkpoints", "divergences"})
    EXPECT_NE(tables.out.find(table), std::string::npos) << table << " in " << tables.out;
}

TEST_F(SqlExport, ExistingFileIsReplacedWholeAndUsageErrorsExitTwo) {
  const fs::path path = dir_->path() / "replaced.sqlite";
  { std::ofstream(path) << "not a database"; }
  const CommandResult r =
      analyze("export " + demo_->recording.string() + " --db " + path.string() + " --no-replay");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(path, Database::Mode::kReadOnly);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM recording"), 1);
  EXPECT_EQ(analyze("export " + demo_->recording.string()).exit_code, 2);  // no --db
  EXPECT_EQ(
      analyze("export " + demo_->recording.string() + " --db /nonexistent/dir/x.sqlite").exit_code,
      2);
}
