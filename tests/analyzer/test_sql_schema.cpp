// The schema files are the single source of truth: every table the exporter
// creates is declared in schemas/sql/<table>.md, and each file's column table
// documents exactly the columns its CREATE TABLE makes. Also the progress
// bar: drawn on a terminal, silent on a pipe.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "progress.h"
#include "sql/schema.h"

namespace fs = std::filesystem;
using analyzer::sql::Database;

namespace {

// Column names listed in the first cell of the Markdown table after the sql block.
std::vector<std::string> documented_columns(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  bool after_sql = false;
  std::vector<std::string> columns;
  const std::regex row(R"(^\| *([a-z0-9_]+) *\|)");
  while (std::getline(in, line)) {
    if (line.starts_with("```sql")) after_sql = true;
    std::smatch match;
    if (after_sql && std::regex_search(line, match, row) && match[1] != "column")
      columns.push_back(match[1]);
  }
  return columns;
}

std::vector<std::string> created_columns(Database& db, std::string_view table) {
  auto statement = db.prepare("SELECT name FROM pragma_table_info('" + std::string(table) + "')");
  std::vector<std::string> columns;
  while (statement.step()) columns.emplace_back(statement.column_text(0));
  return columns;
}

}  // namespace

TEST(SqlSchema, EveryTableIsDeclaredAndDocumentedInItsMarkdownFile) {
  Database db(":memory:", Database::Mode::kCreate);
  analyzer::sql::create_tables(db);
  std::set<std::string> declared;
  const std::regex lower_snake("^[a-z][a-z0-9_]*$");
  for (const auto& table : analyzer::sql::table_declarations()) {
    SCOPED_TRACE(std::string(table.source));
    declared.insert(std::string(table.name));
    EXPECT_TRUE(std::regex_match(std::string(table.name), lower_snake));
    const fs::path file = fs::path(RR_SOURCE_DIR) / table.source;
    ASSERT_TRUE(fs::exists(file));
    const auto created = created_columns(db, table.name);
    ASSERT_FALSE(created.empty());
    for (const std::string& column : created)
      EXPECT_TRUE(std::regex_match(column, lower_snake)) << column;
    EXPECT_EQ(documented_columns(file), created);
  }
  // Every .md file (but the README) became a table, and the tables the task names exist.
  for (const auto& entry : fs::directory_iterator(fs::path(RR_SOURCE_DIR) / "schemas/sql")) {
    if (entry.path().filename() != "README.md") {
      EXPECT_TRUE(declared.count(entry.path().stem().string())) << entry.path();
    }
  }
  for (const char* table : {"recording", "interrupts", "inputs", "frames", "serial_output",
                            "checkpoints", "divergences"})
    EXPECT_TRUE(declared.count(table)) << table;
  // Every table is in the exported database and no other.
  auto statement = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'");
  std::set<std::string> in_database;
  while (statement.step()) in_database.emplace(statement.column_text(0));
  EXPECT_EQ(in_database, declared);
}

TEST(SqlSchema, DigestDependsOnTheDeclarations) {
  const std::string digest = analyzer::sql::schema_digest();
  EXPECT_EQ(digest.size(), 64u);
  EXPECT_EQ(digest, analyzer::sql::schema_digest());
}

TEST(ProgressBar, RendersCountsAndPercentage) {
  // 36 columns: 26 for label and counts, 5 for brackets and spaces, 5 for the bar.
  EXPECT_EQ(analyzer::ProgressBar::render("export", 50, 200, "records", 36),
            "export [#----]   25%  50/200 records");
  EXPECT_EQ(analyzer::ProgressBar::render("export", 7, 0, "records", 60), "export  7 records");
  // Past the end (a total that was an estimate) stays at 100%.
  EXPECT_NE(analyzer::ProgressBar::render("x", 300, 200, "r", 60).find("100%  200/200"),
            std::string::npos);
}

TEST(ProgressBar, SilentOnAPipeDrawnOnATerminal) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  {
    analyzer::ProgressBar bar("export", 10, "records", pipe_fds[1]);
    EXPECT_FALSE(bar.enabled());
    for (uint64_t i = 0; i <= 10; ++i) bar.update(i);
  }
  close(pipe_fds[1]);
  char byte;
  EXPECT_EQ(read(pipe_fds[0], &byte, 1), 0) << "the bar wrote to a pipe";
  close(pipe_fds[0]);

  int master = -1, terminal = -1;
  ASSERT_EQ(openpty(&master, &terminal, nullptr, nullptr, nullptr), 0);
  {
    analyzer::ProgressBar bar("export", 10, "records", terminal);
    EXPECT_TRUE(bar.enabled());
    bar.update(5);
    bar.finish();
  }
  // A pty hands written bytes to its master side asynchronously (the kernel's
  // flush work): read until the erase that ends the bar, or 5 s of silence.
  std::string drawn;
  while (!drawn.ends_with("\r\x1b[K")) {
    pollfd readable{master, POLLIN, 0};
    if (poll(&readable, 1, 5000) != 1) break;
    char chunk[4096];
    const ssize_t n = read(master, chunk, sizeof chunk);
    if (n <= 0) break;
    drawn.append(chunk, static_cast<size_t>(n));
  }
  ASSERT_FALSE(drawn.empty());
  EXPECT_NE(drawn.find("50%  5/10 records"), std::string::npos) << drawn;
  EXPECT_TRUE(drawn.ends_with("\r\x1b[K")) << "the line is erased when done";
  close(master);
  close(terminal);
}
