// rr-analyze query on a real recording: the three output formats, the cache
// next to the recording (made once, remade when the log changes), SQLite's
// own message and exit 2 for SQL it rejects, exit 1 for a missing recording.
#include <nlohmann/json.hpp>

#include "test_sql_support.h"

using namespace sql_test;

namespace {

class SqlQuery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(why_no_guests());
    if (!skip_reason_->empty()) return;
    dir_ = new TempDir;
    demo_ = new Recorded(record_guest(dir_->path() / "demo", "--guest demo --serial-in none"));
  }
  static void TearDownTestSuite() {
    delete demo_;
    delete dir_;
    delete skip_reason_;
  }
  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_ << ": cannot record guests";
    ASSERT_EQ(demo_->exit_code, 0) << demo_->err;
  }
  CommandResult query(const std::string& sql, const std::string& options = "") {
    return analyze("query " + demo_->recording.string() + " " + shell_quote(sql) + " " + options);
  }

  static std::string* skip_reason_;
  static TempDir* dir_;
  static Recorded* demo_;
};

std::string* SqlQuery::skip_reason_ = nullptr;
TempDir* SqlQuery::dir_ = nullptr;
Recorded* SqlQuery::demo_ = nullptr;

}  // namespace

TEST_F(SqlQuery, JsonCsvAndTableAgree) {
  const CommandResult json =
      query("SELECT COUNT(*) AS n, x'00ff' AS b, NULL AS z, 'a,\"b\"' AS t FROM interrupts",
            "--format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto rows = nlohmann::json::parse(json.out);
  ASSERT_EQ(rows.size(), 1u);
  const int64_t n = rows[0]["n"].get<int64_t>();
  EXPECT_GT(n, 0);
  EXPECT_EQ(rows[0]["b"], "00ff");
  EXPECT_TRUE(rows[0]["z"].is_null());
  EXPECT_EQ(rows[0]["t"], "a,\"b\"");

  const CommandResult csv =
      query("SELECT COUNT(*) AS n, x'00ff' AS b, NULL AS z, 'a,\"b\"' AS t FROM interrupts",
            "--format csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(csv.out, "n,b,z,t\r\n" + std::to_string(n) + ",00ff,,\"a,\"\"b\"\"\"\r\n");

  const CommandResult table = query("SELECT COUNT(*) AS n, NULL AS z FROM interrupts");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  // Columns two spaces apart, as wide as their widest value; numbers to the right.
  const std::string count = std::to_string(n);
  EXPECT_EQ(table.out, "n" + std::string(count.size() - 1, ' ') + "  z\n" +
                           std::string(count.size(), '-') + "  ----\n" + count + "  NULL\n");
}

TEST_F(SqlQuery, TableEscapesLineBreaksJsonKeepsColumnOrder) {
  const CommandResult table = query("SELECT 'a' || char(10) || 'b' || char(9) AS t");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out, "t\n------\na\\nb\\t\n");
  const CommandResult json = query("SELECT 2 AS zeta, 1 AS alpha", "--format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_LT(json.out.find("zeta"), json.out.find("alpha")) << json.out;
}

TEST_F(SqlQuery, SerialOutputAndMultipleStatements) {
  const CommandResult r = query(
      "SELECT text FROM serial_output ORDER BY line_number; SELECT replay_status FROM recording",
      "--format csv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The first line of the console is the first CSV row, the status follows.
  const std::string first_line = demo_->console.substr(0, demo_->console.find('\n'));
  EXPECT_NE(r.out.find(first_line), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("replay_status\r\nfaithful\r\n"), std::string::npos) << r.out;
}

TEST_F(SqlQuery, CachesNextToTheRecordingAndRebuildsWhenTheLogChanges) {
  const fs::path cache = demo_->recording / "analysis.sqlite";
  fs::remove(cache);
  const CommandResult first = query("SELECT COUNT(*) FROM inputs");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("exported to"), std::string::npos) << first.err;
  ASSERT_TRUE(fs::exists(cache));
  const auto made = fs::last_write_time(cache);

  const CommandResult second = query("SELECT COUNT(*) FROM inputs");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("exported to"), std::string::npos) << second.err;
  EXPECT_EQ(second.out, first.out);
  EXPECT_EQ(fs::last_write_time(cache), made);

  // A log with another modification time is another log as far as the cache knows.
  const fs::path log = demo_->recording / "events.rrlog";
  fs::last_write_time(log, fs::last_write_time(log) + std::chrono::seconds(1));
  const CommandResult third = query("SELECT COUNT(*) FROM inputs");
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("exported to"), std::string::npos) << third.err;
  EXPECT_EQ(third.out, first.out);

  // sqlite3 reads the cache too, and sees the same count.
  if (access("/usr/bin/sqlite3", X_OK) == 0) {
    const CommandResult csv = query("SELECT COUNT(*) AS n FROM inputs", "--format csv");
    const CommandResult cli =
        run_shell("sqlite3 " + cache.string() + " 'SELECT COUNT(*) FROM inputs'");
    EXPECT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_EQ("n\r\n" + cli.out.substr(0, cli.out.size() - 1) + "\r\n", csv.out);
  }
}

TEST_F(SqlQuery, RejectedSqlPrintsSqlitesMessageAndExitsTwo) {
  const CommandResult syntax = query("SELEC 1");
  EXPECT_EQ(syntax.exit_code, 2);
  EXPECT_NE(syntax.err.find("near \"SELEC\": syntax error"), std::string::npos) << syntax.err;
  EXPECT_TRUE(syntax.out.empty()) << syntax.out;

  const CommandResult table = query("SELECT * FROM no_such_thing");
  EXPECT_EQ(table.exit_code, 2);
  EXPECT_NE(table.err.find("no such table: no_such_thing"), std::string::npos) << table.err;

  // The cache is opened read-only: a query cannot change it.
  const CommandResult write = query("DELETE FROM interrupts");
  EXPECT_EQ(write.exit_code, 2);
  EXPECT_NE(write.err.find("readonly"), std::string::npos) << write.err;
  const CommandResult count = query("SELECT COUNT(*) > 0 AS any FROM interrupts", "--format csv");
  EXPECT_EQ(count.out, "any\r\n1\r\n");

  EXPECT_EQ(query("SELECT 1", "--format yaml").exit_code, 2);
}

TEST_F(SqlQuery, MissingRecordingExitsOneNamingIt) {
  const CommandResult r = analyze("query /nonexistent/recording 'SELECT 1'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/recording"), std::string::npos) << r.err;
}
