#pragma once
// Thin RAII ownership of sqlite3 handles: a database connection and prepared
// statements, with errors thrown as SqlError carrying SQLite's own message.
// Only what the exporter and the query command need.
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace analyzer::sql {

// An error SQLite reported; what() is SQLite's message, prefixed by context.
class SqlError : public std::runtime_error {
 public:
  SqlError(const std::string& context, const std::string& sqlite_message)
      : std::runtime_error(context.empty() ? sqlite_message : context + ": " + sqlite_message),
        sqlite_message_(sqlite_message) {}
  // SQLite's text alone, e.g. `near "SELEC": syntax error`.
  const std::string& sqlite_message() const { return sqlite_message_; }

 private:
  std::string sqlite_message_;
};

class Statement;

class Database {
 public:
  enum class Mode { kReadOnly, kCreate };
  Database(const std::filesystem::path& path, Mode mode);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  void exec(std::string_view sql);
  Statement prepare(std::string_view sql);
  sqlite3* handle() const { return db_; }
  const std::filesystem::path& path() const { return path_; }
  // Closes now, reporting a failure (the destructor cannot).
  void close();

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

// A prepared statement. bind() is 1-based like SQLite's; step() returns true
// while rows come.
class Statement {
 public:
  Statement(Database& db, std::string_view sql, std::string_view* tail = nullptr);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;

  // False when the SQL was only whitespace or comments (nothing to run).
  bool empty() const { return stmt_ == nullptr; }

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, uint64_t value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, unsigned value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, bool value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const std::string& text) {
    return bind(index, std::string_view(text));
  }
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind(int index, std::span<const uint8_t> blob);
  Statement& bind(int index, std::nullopt_t);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, std::nullopt);
  }

  // Binds every argument in order (from 1), runs the statement to completion
  // and resets it for the next call: one INSERT.
  template <class... Args>
  void run(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
    while (step()) {
    }
    reset();
  }

  bool step();
  void reset();

  int column_count() const;
  std::string column_name(int column) const;
  int column_type(
      int column) const;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL
  int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string_view column_text(int column) const;
  std::span<const uint8_t> column_blob(int column) const;

 private:
  [[noreturn]] void fail(const std::string& context) const;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace analyzer::sql
