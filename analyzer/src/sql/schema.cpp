#include "sql/schema.h"

#include "librr/crypto.h"

namespace analyzer::sql {

std::span<const TableDeclaration> table_declarations() { return generated::kTables; }

void create_tables(Database& db) {
  for (const TableDeclaration& table : table_declarations()) {
    try {
      db.exec(table.ddl);
    } catch (const SqlError& e) {
      // A declaration SQLite refuses is a bug in that .md file: name it.
      throw SqlError(std::string(table.source), e.sqlite_message());
    }
  }
}

std::string schema_digest() {
  librr::Hasher hasher;
  for (const TableDeclaration& table : table_declarations()) {
    hasher.update({reinterpret_cast<const uint8_t*>(table.ddl.data()), table.ddl.size()});
    hasher.update_pod(uint8_t{0});
  }
  const librr::Digest digest = hasher.finish();
  return librr::to_hex(digest);
}

}  // namespace analyzer::sql
