// The forensic tables of `rr-analyze export` on a real recording of the demo
// test guest made with the real rr-vmm: `processes` is the guest's own task
// table (what the guest printed about its tasks, and what its kernel counted
// in memory), `syscalls` has exactly the calls each task made (its WRITE
// calls are the console lines it printed), positions join with the issue-5
// tables, and recordings without a profile or with --no-forensics still
// export.
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "sql/schema.h"
#include "sql/sqlite.h"
#include "test_sql_queries.h"
#include "test_sql_support.h"

using namespace sql_test;
using analyzer::sql::Database;

namespace {

// Rows of a two-column query as a map from the first column to the second.
std::map<std::string, int64_t> query_map(Database& db, const std::string& sql) {
  auto statement = db.prepare(sql);
  std::map<std::string, int64_t> rows;
  while (statement.step()) rows[std::string(statement.column_text(0))] = statement.column_int(1);
  return rows;
}

// The timeline pass is part of the default export; when it failed, the
// export says so in forensics_message, and the tests of the tables it fills
// fail naming the failure.
#define REQUIRE_TIMELINE(db)                                                              \
  ASSERT_EQ(query_text(db, "SELECT forensics_message FROM recording").find("timeline: "), \
            std::string::npos)                                                            \
      << query_text(db, "SELECT forensics_message FROM recording")

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The demo guest (main + lcg, collatz, sieve) recorded once, exported once
// with the defaults (forensics and timeline), the profile cached in a private
// directory.
class SqlForensics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(why_no_guests());
    if (!skip_reason_->empty()) return;
    dir_ = new TempDir;
    demo_ = new Recorded(
        record_guest(dir_->path() / "demo", "--guest demo --serial-in none --append work=20"));
    if (demo_->exit_code != 0) return;
    db_path_ = new fs::path(dir_->path() / "demo.sqlite");
    const auto start = std::chrono::steady_clock::now();
    export_ =
        new CommandResult(run_shell(env() + rr_analyze() + " export " + demo_->recording.string() +
                                    " --db " + db_path_->string()));
    export_seconds_ =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  static void TearDownTestSuite() {
    delete export_;
    delete db_path_;
    delete demo_;
    delete dir_;
    delete skip_reason_;
  }
  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_ << ": cannot record guests";
    ASSERT_EQ(demo_->exit_code, 0) << demo_->err;
    ASSERT_EQ(export_->exit_code, 0) << export_->err;
  }

  // Profiles go to a private cache, generated on first use.
  static std::string env() { return "RR_CACHE_DIR=" + (dir_->path() / "cache").string() + " "; }
  static CommandResult analyze_here(const std::string& args) {
    return run_shell(env() + rr_analyze() + " " + args);
  }
  static uint64_t console_number(const std::string& pattern) {
    std::smatch match;
    if (!std::regex_search(demo_->console, match, std::regex(pattern)))
      throw std::runtime_error("console lacks " + pattern);
    return std::stoull(match[1].str(), nullptr, 0);
  }

  static std::string* skip_reason_;
  static TempDir* dir_;
  static Recorded* demo_;
  static fs::path* db_path_;
  static CommandResult* export_;
  static double export_seconds_;
};

std::string* SqlForensics::skip_reason_ = nullptr;
TempDir* SqlForensics::dir_ = nullptr;
Recorded* SqlForensics::demo_ = nullptr;
fs::path* SqlForensics::db_path_ = nullptr;
CommandResult* SqlForensics::export_ = nullptr;
double SqlForensics::export_seconds_ = 0;

}  // namespace

TEST(SqlForensicsSchema, TheForensicTablesAreDeclared) {
  std::set<std::string> declared;
  for (const auto& table : analyzer::sql::table_declarations()) declared.emplace(table.name);
  for (const char* table : {"processes", "process_events", "syscalls", "file_events", "net_events",
                            "kernel_log", "mounts", "net_devices"})
    EXPECT_TRUE(declared.count(table)) << table;
}

TEST_F(SqlForensics, ProcessesAreTheGuestsTaskTable) {
  Database db(*db_path_, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT forensics_os FROM recording"), "rr test guest");
  EXPECT_GT(query_int(db, "SELECT forensics_samples FROM recording"), 10);
  // idle + the tasks the kernel said it started, with the names the guest printed.
  const uint64_t tasks = console_number(R"(KERNEL timer_hz=\d+ tasks=(\d+))");
  ASSERT_EQ(query_int(db, "SELECT COUNT(*) FROM processes"), static_cast<int64_t>(tasks + 1));
  EXPECT_EQ(query_text(db,
                       "SELECT group_concat(name, ',') FROM (SELECT name FROM processes "
                       "ORDER BY pid)"),
            "idle,main,lcg,collatz,sieve");
  EXPECT_EQ(query_int(db, "SELECT pid FROM processes WHERE name = 'main'"),
            static_cast<int64_t>(console_number(R"(demo: main pid (\d+) starting)")));
  for (const char* worker : {"lcg", "collatz", "sieve"})
    EXPECT_NE(demo_->console.find(std::string("demo: ") + worker + " round 1/"), std::string::npos);
  // Each worker exited with the code main printed when it reaped it; main
  // shut the machine down, so it is the one running at the end.
  for (int pid = 2; pid <= 4; ++pid) {
    SCOPED_TRACE(pid);
    const std::string where = " FROM processes WHERE pid = " + std::to_string(pid);
    EXPECT_EQ(query_text(db, "SELECT state" + where), "exited");
    EXPECT_EQ(query_int(db, "SELECT exit_code" + where),
              static_cast<int64_t>(
                  console_number("demo: worker " + std::to_string(pid) + R"( exited code=(\d+))")));
  }
  EXPECT_EQ(query_text(db, "SELECT state FROM processes WHERE pid = 1"), "running");
  EXPECT_EQ(query_int(db, "SELECT kernel_thread FROM processes WHERE pid = 0"), 1);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM processes WHERE alive_at_end = 1"),
            static_cast<int64_t>(tasks + 1));
  // The test guest has no users and no parent links.
  EXPECT_EQ(query_int(db,
                      "SELECT COUNT(*) FROM processes WHERE uid IS NOT NULL OR parent IS NOT "
                      "NULL"),
            0);
  // First and last seen: the tasks exist before any of them printed, and
  // the last sample is the end of the recording.
  EXPECT_EQ(query_int(db,
                      "SELECT COUNT(*) FROM processes p WHERE (p.first_seen_landmark, "
                      "p.first_seen_async_seq) > (SELECT landmark, async_seq FROM serial_output "
                      "WHERE text LIKE 'demo: ' || p.name || ' round 1/%')"),
            0);
  EXPECT_EQ(query_int(db, "SELECT COUNT(DISTINCT last_seen_position) FROM processes"), 1);
  EXPECT_EQ(query_text(db, "SELECT last_seen_position FROM processes LIMIT 1"),
            query_text(db, "SELECT replay_end_position FROM recording"));
  // The same table `ps` reads from memory at the end.
  const CommandResult ps = analyze_here("ps " + demo_->recording.string() + " --json");
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  for (const auto& p : nlohmann::json::parse(ps.out)["processes"]) {
    const std::string where = " FROM processes WHERE pid = " + std::to_string(p["pid"].get<int>());
    EXPECT_EQ(query_text(db, "SELECT name" + where), p["name"]);
    EXPECT_EQ(query_int(db, "SELECT syscall_count" + where),
              p["details"]["syscalls_total"].get<int64_t>());
    EXPECT_EQ(nlohmann::json::parse(query_text(db, "SELECT details_json" + where)), p["details"]);
  }
  // Nothing Linux-only on the test guest.
  for (const char* table : {"kernel_log", "mounts", "net_devices", "process_events", "file_events"})
    EXPECT_EQ(query_int(db, std::string("SELECT COUNT(*) FROM ") + table), 0) << table;
}

TEST_F(SqlForensics, SyscallsPerTaskAreWhatTheGuestCountedAndPrinted) {
  Database db(*db_path_, Database::Mode::kReadOnly);
  REQUIRE_TIMELINE(db);
  ASSERT_EQ(query_text(db, "SELECT forensics_status FROM recording"), "complete")
      << query_text(db, "SELECT forensics_message FROM recording");
  // Per task and call, the count equals the guest kernel's own counter
  // (rr_task.syscall_count, restarts of blocking calls included), also for
  // calls made in the stretch before an async stop in user mode (the
  // recorder counted the kernel entries there, docs/analyzer.md).
  std::vector<std::string> missed;
  auto processes = db.prepare("SELECT pid, name, details_json FROM processes ORDER BY pid");
  while (processes.step()) {
    const int64_t pid = processes.column_int(0);
    SCOPED_TRACE(std::string(processes.column_text(1)));
    std::map<std::string, int64_t> counted;
    // A named object: items() of a temporary would outlive it.
    const auto details = nlohmann::json::parse(std::string(processes.column_text(2)));
    for (const auto& [key, value] : details.items())
      if (key.starts_with("sys_")) counted[key.substr(4)] = value.get<int64_t>();
    const auto traced =
        query_map(db, "SELECT name, COUNT(*) FROM syscalls WHERE pid = " + std::to_string(pid) +
                          " GROUP BY name");
    for (const auto& [name, count] : traced) {
      EXPECT_TRUE(counted.count(name)) << name << " traced but never counted by the guest";
      EXPECT_LE(count, counted[name]) << name << ": more calls traced than the guest made";
    }
    for (const auto& [name, count] : counted) {
      const int64_t seen = traced.count(name) ? traced.at(name) : 0;
      if (seen < count)
        missed.push_back(fmt::format("{} {}x{}", processes.column_text(1), name, count - seen));
    }
  }
  // Each WRITE is one line the task printed (uprintf writes a line at once):
  // workers print their rounds, main everything else the user side prints.
  std::map<std::string, int64_t> printed;
  for (const std::string& line : lines_of(demo_->console)) {
    std::smatch match;
    if (std::regex_search(line, match, std::regex("^demo: (lcg|collatz|sieve) round ")))
      ++printed[match[1]];
    else if (!line.starts_with("KERNEL "))
      ++printed["main"];
  }
  EXPECT_EQ(query_map(db, "SELECT comm, COUNT(*) FROM syscalls WHERE name = 'WRITE' GROUP BY comm"),
            printed);
  // Arguments and results: WRITE(buf, len) returns len; GETPID returns the pid.
  EXPECT_EQ(query_int(db,
                      "SELECT COUNT(*) FROM syscalls WHERE name = 'WRITE' AND (result IS "
                      "NULL OR result != arg1)"),
            0);
  EXPECT_GT(query_int(db, "SELECT COUNT(*) FROM syscalls WHERE name = 'GETPID'"), 0);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM syscalls WHERE name = 'GETPID' AND result != pid"),
            0);
  // SHUTDOWN never returns; main made it, last of all calls.
  EXPECT_EQ(query_text(db,
                       "SELECT name || ':' || pid || ':' || ifnull(result, 'none') FROM "
                       "syscalls ORDER BY id DESC LIMIT 1"),
            "SHUTDOWN:1:none");
  // In replay order, ids too (a position named by arrivals has no step count).
  EXPECT_EQ(query_int(db,
                      "SELECT COUNT(*) FROM syscalls a JOIN syscalls b ON b.id = a.id + 1 "
                      "WHERE (b.landmark, b.async_seq) < (a.landmark, a.async_seq) OR "
                      "(b.landmark = a.landmark AND b.async_seq = a.async_seq AND b.steps < "
                      "a.steps)"),
            0);
  EXPECT_EQ(query_int(db,
                      "SELECT COUNT(*) FROM syscalls WHERE position LIKE '%@%' AND steps IS "
                      "NOT NULL"),
            0);
  // The ABI's four argument registers, all read (RDI, RSI, RDX, R10).
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM syscalls WHERE arg3 IS NULL"), 0);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM syscalls WHERE json_array_length(args_json) != 4"),
            0);
  // The test guest's packets are system calls; no kernel network functions.
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM net_events"), 0);
  EXPECT_TRUE(missed.empty()) << "calls the guest made but the trace lacks: "
                              << fmt::format("{}", fmt::join(missed, ", "));
}

TEST_F(SqlForensics, SyscallsJoinSerialOutputAndInterruptsByPosition) {
  if (access("/usr/bin/sqlite3", X_OK) != 0)
    GTEST_SKIP() << "the sqlite3 CLI is not installed (scripts/debian-packages.txt lists it)";
  {
    Database db(*db_path_, Database::Mode::kReadOnly);
    REQUIRE_TIMELINE(db);
  }
  // The last WRITE before each worker's progress line (by landmark and
  // async_seq) was made by that worker: the console line is its call's output.
  const std::string last_write_before_each_round_line =
      "SELECT s.line_number, (SELECT c.comm FROM syscalls c WHERE c.name = 'WRITE' AND "
      "(c.landmark, c.async_seq) <= (s.landmark, s.async_seq) ORDER BY c.id DESC LIMIT 1) AS "
      "writer, substr(s.text, 7, instr(substr(s.text, "
      "7), ' ') - 1) AS printed_name FROM serial_output s WHERE s.text LIKE 'demo: % round %'";
  const CommandResult mismatches =
      run_shell("sqlite3 " + db_path_->string() + " " +
                shell_quote("SELECT COUNT(*), SUM(writer = printed_name) FROM (" +
                            last_write_before_each_round_line + ")"));
  ASSERT_EQ(mismatches.exit_code, 0) << mismatches.err;
  EXPECT_EQ(mismatches.out, "24|24\n") << "8 rounds of 3 workers, each line after its WRITE";
  {
    // The count below needs all of lcg's SLEEP calls.
    Database db(*db_path_, Database::Mode::kReadOnly);
    const int64_t traced =
        query_int(db, "SELECT COUNT(*) FROM syscalls WHERE name = 'SLEEP' AND comm = 'lcg'");
    const int64_t made = query_int(
        db, "SELECT json_extract(details_json, '$.sys_SLEEP') FROM processes WHERE name = 'lcg'");
    ASSERT_EQ(traced, made) << "lcg's SLEEP calls traced / made";
  }
  // Timer interrupts (vector 32, issue-5 `interrupts`) between lcg's first
  // and last SLEEP call: seven whole sleeps of 10 ticks lie between them.
  const CommandResult ticks = run_shell(
      "sqlite3 " + db_path_->string() + " " +
      shell_quote("WITH sleeps AS (SELECT MIN(id) AS first_id, MAX(id) AS last_id FROM syscalls "
                  "WHERE name = 'SLEEP' AND comm = 'lcg') SELECT COUNT(*) FROM interrupts i, "
                  "sleeps, syscalls f, syscalls l WHERE f.id = sleeps.first_id AND l.id = "
                  "sleeps.last_id AND i.vector = 32 AND (i.landmark, i.async_seq) > (f.landmark, "
                  "f.async_seq) AND (i.landmark, i.async_seq) <= (l.landmark, l.async_seq)"));
  ASSERT_EQ(ticks.exit_code, 0) << ticks.err;
  EXPECT_GE(std::stoll(ticks.out), 70);
}

TEST_F(SqlForensics, ExportTimeAndSummary) {
  // Not a benchmark: the number is printed for the report.
  std::printf("demo work=20 export with forensics: %.1f s\n", export_seconds_);
  EXPECT_NE(export_->err.find("forensics "), std::string::npos) << export_->err;
  EXPECT_NE(export_->err.find(" (rr test guest): 5 processes"), std::string::npos) << export_->err;
  Database db(*db_path_, Database::Mode::kReadOnly);
  REQUIRE_TIMELINE(db);
  EXPECT_NE(export_->err.find("forensics complete"), std::string::npos) << export_->err;
}

TEST_F(SqlForensics, NoForensicsAndNoTimelineSkipWhatTheySay) {
  const fs::path skipped = dir_->path() / "skipped.sqlite";
  const CommandResult r = analyze_here("export " + demo_->recording.string() + " --db " +
                                       skipped.string() + " --no-forensics");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(skipped, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT forensics_status FROM recording"), "skipped");
  EXPECT_EQ(query_int(db, "SELECT forensics_samples FROM recording"), 0);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM processes"), 0);
  EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "faithful");

  const fs::path sampled = dir_->path() / "no-timeline.sqlite";
  const CommandResult t = analyze_here("export " + demo_->recording.string() + " --db " +
                                       sampled.string() + " --no-timeline");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  Database db2(sampled, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db2, "SELECT forensics_status FROM recording"), "no_timeline");
  EXPECT_EQ(query_int(db2, "SELECT COUNT(*) FROM processes"), 5);
  EXPECT_EQ(query_int(db2, "SELECT COUNT(*) FROM syscalls"), 0);
  EXPECT_EQ(query_int(db2, "SELECT COUNT(*) FROM processes WHERE first_seen_source != 'sample'"),
            0);
}

TEST_F(SqlForensics, QueryCacheFollowsTheForensicOptions) {
  const std::string rec = demo_->recording.string();
  const CommandResult first = analyze_here("query " + rec +
                                           " 'SELECT COUNT(*) FROM processes' "
                                           "--format csv --no-timeline");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "COUNT(*)\r\n5\r\n");
  const CommandResult same = analyze_here("query " + rec +
                                          " 'SELECT forensics_status FROM "
                                          "recording' --format csv --no-timeline");
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.err.find("exported to"), std::string::npos) << "the cache was not reused";
  EXPECT_EQ(same.out, "forensics_status\r\nno_timeline\r\n");
  const CommandResult other = analyze_here("query " + rec +
                                           " 'SELECT COUNT(*) FROM processes' "
                                           "--format csv --no-forensics");
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(other.err.find("exported to"), std::string::npos) << "other options, same cache";
  EXPECT_EQ(other.out, "COUNT(*)\r\n0\r\n");
}

TEST_F(SqlForensics, WrongOrMissingProfile) {
  // The demo kernel's profile with its task table moved: the model finds no
  // table there, so every sample is refused, the tables stay empty and the
  // row says why.
  const fs::path good_profile = dir_->path() / "demo-profile.json";
  ASSERT_EQ(analyze_here("profile generate --elf " + (guest_dir() / "demo.elf").string() +
                         " --out " + good_profile.string())
                .exit_code,
            0);
  auto isf = nlohmann::json::parse(read_file(good_profile));
  isf["symbols"]["rr_task_table"]["address"] =
      isf["symbols"]["rr_task_table"]["address"].get<uint64_t>() + 0x1000;
  const fs::path moved_profile = dir_->path() / "moved-table.json";
  std::ofstream(moved_profile) << isf.dump();
  const fs::path wrong = dir_->path() / "wrong-profile.sqlite";
  const CommandResult r = analyze_here("export " + demo_->recording.string() + " --db " +
                                       wrong.string() + "  --profile " + moved_profile.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(wrong, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT forensics_status FROM recording"), "partial");
  EXPECT_NE(query_text(db, "SELECT forensics_message FROM recording").find("does not fit"),
            std::string::npos);
  EXPECT_EQ(query_int(db, "SELECT COUNT(*) FROM processes"), 0);
  // A --profile file that does not exist is a usage error, and nothing is written.
  const fs::path none = dir_->path() / "none.sqlite";
  const CommandResult missing = analyze_here("export " + demo_->recording.string() + " --db " +
                                             none.string() + " --profile /nonexistent.json");
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("/nonexistent.json"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(none));
}

TEST_F(SqlForensics, RecordingWithoutAProfileStillExports) {
  // A guest whose kernel ELF is gone after recording: no profile can be
  // generated, so the forensic tables are empty and the row says why.
  const fs::path guests = dir_->path() / "guests";
  fs::create_directories(guests);
  fs::copy_file(guest_dir() / "hello.elf", guests / "hello.elf");
  const fs::path rec = dir_->path() / "hello";
  const CommandResult recorded =
      run_shell("RR_GUEST_DIR=" + guests.string() + " " + rr_vmm() + " record --out " +
                rec.string() + " --guest hello --serial-in none");
  ASSERT_EQ(recorded.exit_code, 0) << recorded.err;
  fs::remove(guests / "hello.elf");
  const fs::path db_path = dir_->path() / "hello.sqlite";
  const CommandResult r =
      run_shell("RR_CACHE_DIR=" + (dir_->path() / "empty-cache").string() + " " + rr_analyze() +
                " export " + rec.string() + " --db " + db_path.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Database db(db_path, Database::Mode::kReadOnly);
  EXPECT_EQ(query_text(db, "SELECT forensics_status FROM recording"), "no_profile");
  EXPECT_NE(query_text(db, "SELECT forensics_message FROM recording"), "NULL");
  EXPECT_EQ(query_text(db, "SELECT replay_status FROM recording"), "faithful");
  EXPECT_GT(query_int(db, "SELECT COUNT(*) FROM serial_output"), 0);
  for (const char* table : {"processes", "syscalls", "kernel_log"})
    EXPECT_EQ(query_int(db, std::string("SELECT COUNT(*) FROM ") + table), 0) << table;
}
