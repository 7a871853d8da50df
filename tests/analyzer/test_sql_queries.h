#pragma once
// One-value queries against an exported database, for the SQL tests.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "sql/sqlite.h"

namespace sql_test {

inline int64_t query_int(analyzer::sql::Database& db, const std::string& sql) {
  auto statement = db.prepare(sql);
  EXPECT_TRUE(statement.step()) << sql;
  return statement.column_int(0);
}

// The first column of the first row; "NULL" for an SQL NULL.
inline std::string query_text(analyzer::sql::Database& db, const std::string& sql) {
  auto statement = db.prepare(sql);
  EXPECT_TRUE(statement.step()) << sql;
  return statement.column_type(0) == SQLITE_NULL ? "NULL" : std::string(statement.column_text(0));
}

}  // namespace sql_test
