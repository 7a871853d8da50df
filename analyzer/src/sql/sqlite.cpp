#include "sql/sqlite.h"

#include <fmt/format.h>

namespace analyzer::sql {

Database::Database(const std::filesystem::path& path, Mode mode) : path_(path) {
  const int flags =
      mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw SqlError(fmt::format("cannot open database {}", path.string()), message);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Database::~Database() { sqlite3_close_v2(db_); }

void Database::close() {
  if (!db_) return;
  const int rc = sqlite3_close(db_);
  if (rc != SQLITE_OK)
    throw SqlError(fmt::format("closing {}", path_.string()), sqlite3_errmsg(db_));
  db_ = nullptr;
}

void Database::exec(std::string_view sql) {
  // sqlite3_exec needs a NUL-terminated string.
  const std::string text(sql);
  char* error = nullptr;
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw SqlError(fmt::format("{}", path_.string()), message);
  }
}

Statement Database::prepare(std::string_view sql) { return Statement(*this, sql); }

Statement::Statement(Database& db, std::string_view sql, std::string_view* tail)
    : db_(db.handle()) {
  const char* end = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, &end) != SQLITE_OK)
    throw SqlError("", sqlite3_errmsg(db_));
  if (tail) *tail = sql.substr(static_cast<size_t>(end - sql.data()));
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

void Statement::fail(const std::string& context) const {
  throw SqlError(fmt::format("{} in `{}`", context, stmt_ ? sqlite3_sql(stmt_) : ""),
                 sqlite3_errmsg(db_));
}

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) fail("binding");
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) !=
      SQLITE_OK)
    fail("binding");
  return *this;
}

Statement& Statement::bind(int index, std::span<const uint8_t> blob) {
  // A zero-length blob still binds a BLOB (not NULL): data is never a null pointer.
  static const uint8_t kEmpty = 0;
  if (sqlite3_bind_blob64(stmt_, index, blob.empty() ? &kEmpty : blob.data(), blob.size(),
                          SQLITE_TRANSIENT) != SQLITE_OK)
    fail("binding");
  return *this;
}

Statement& Statement::bind(int index, std::nullopt_t) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) fail("binding");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SqlError("", sqlite3_errmsg(db_));
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int Statement::column_count() const { return sqlite3_column_count(stmt_); }

std::string Statement::column_name(int column) const {
  const char* name = sqlite3_column_name(stmt_, column);
  return name ? name : "";
}

int Statement::column_type(int column) const { return sqlite3_column_type(stmt_, column); }

int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::column_double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string_view Statement::column_text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return text ? std::string_view(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
              : std::string_view();
}

std::span<const uint8_t> Statement::column_blob(int column) const {
  const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, column));
  return {data, data ? static_cast<size_t>(sqlite3_column_bytes(stmt_, column)) : 0};
}

}  // namespace analyzer::sql
