#pragma once
// Runs SQL against an export database and prints each statement's rows as an
// aligned table, CSV (RFC 4180) or JSON (an array of objects per statement).
// Values: NULL prints as NULL (table), an empty field (CSV) or null (JSON);
// BLOBs print as lowercase hex.
#include <cstdio>
#include <string>
#include <string_view>

#include "sql/sqlite.h"

namespace analyzer::sql {

enum class OutputFormat { kTable, kCsv, kJson };

// Runs every statement of `sql` in order. Throws SqlError with SQLite's
// message for SQL it rejects (nothing of a failing statement is printed).
void run_query(Database& db, std::string_view sql, OutputFormat format, std::FILE* out);

}  // namespace analyzer::sql
