#pragma once
// The tables of the export database, as declared in schemas/sql/<table>.md
// and embedded at build time (schema.cmake): the declarations are never
// repeated in C++.
#include <span>
#include <string>

#include "sql/schema_tables.h"
#include "sql/sqlite.h"

namespace analyzer::sql {

using generated::TableDeclaration;

std::span<const TableDeclaration> table_declarations();
// Runs every declaration's sql block.
void create_tables(Database& db);
// BLAKE2b hex of all declarations: part of the cache key, so a database made
// with other tables is rebuilt.
std::string schema_digest();

}  // namespace analyzer::sql
