#include "sql/query_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "librr/crypto.h"

namespace analyzer::sql {
namespace {

struct Cell {
  int type = SQLITE_NULL;
  std::string text;  // the value as text (hex for BLOBs)
  int64_t integer = 0;
  double real = 0;
};

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

Cell read_cell(const Statement& statement, int column) {
  Cell cell;
  cell.type = statement.column_type(column);
  switch (cell.type) {
    case SQLITE_INTEGER:
      cell.integer = statement.column_int(column);
      cell.text = std::to_string(cell.integer);
      break;
    case SQLITE_FLOAT:
      cell.real = statement.column_double(column);
      cell.text = fmt::format("{}", cell.real);
      break;
    case SQLITE_BLOB:
      cell.text = librr::to_hex(statement.column_blob(column));
      break;
    case SQLITE_TEXT:
      cell.text = std::string(statement.column_text(column));
      break;
    default:
      break;
  }
  return cell;
}

// Collects all rows first: a statement that fails half-way prints nothing.
ResultSet collect(Statement& statement) {
  ResultSet result;
  for (int i = 0; i < statement.column_count(); ++i)
    result.columns.push_back(statement.column_name(i));
  while (statement.step()) {
    std::vector<Cell>& row = result.rows.emplace_back();
    for (int i = 0; i < statement.column_count(); ++i) row.push_back(read_cell(statement, i));
  }
  return result;
}

bool is_number(const Cell& cell) {
  return cell.type == SQLITE_INTEGER || cell.type == SQLITE_FLOAT;
}

// Line breaks and tabs inside a value would break the columns: shown as \n, \r, \t.
std::string escape_for_table(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    if (c == '\n')
      escaped += "\\n";
    else if (c == '\r')
      escaped += "\\r";
    else if (c == '\t')
      escaped += "\\t";
    else
      escaped += c;
  }
  return escaped;
}

// Aligned columns under a header line; numbers right-aligned.
void print_table(ResultSet result, std::FILE* out) {
  for (auto& row : result.rows)
    for (Cell& cell : row) cell.text = escape_for_table(cell.text);
  std::vector<size_t> widths;
  for (const std::string& name : result.columns) widths.push_back(name.size());
  for (const auto& row : result.rows)
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].type == SQLITE_NULL ? size_t{4} : row[i].text.size());
  std::string line;
  for (size_t i = 0; i < widths.size(); ++i)
    line += fmt::format("{}{:<{}}", i ? "  " : "", result.columns[i], widths[i]);
  fmt::print(out, "{}\n", line.substr(0, line.find_last_not_of(' ') + 1));
  line.clear();
  for (size_t i = 0; i < widths.size(); ++i)
    line += fmt::format("{}{}", i ? "  " : "", std::string(widths[i], '-'));
  fmt::print(out, "{}\n", line);
  for (const auto& row : result.rows) {
    line.clear();
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string& text = row[i].type == SQLITE_NULL ? "NULL" : row[i].text;
      line += is_number(row[i]) ? fmt::format("{}{:>{}}", i ? "  " : "", text, widths[i])
                                : fmt::format("{}{:<{}}", i ? "  " : "", text, widths[i]);
    }
    fmt::print(out, "{}\n", line.substr(0, line.find_last_not_of(' ') + 1));
  }
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

void print_csv(const ResultSet& result, std::FILE* out) {
  auto print_row = [out](const auto& fields) {
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
    fmt::print(out, "{}\r\n", line);
  };
  print_row(result.columns);
  for (const auto& row : result.rows) {
    std::vector<std::string> fields;
    for (const Cell& cell : row) fields.push_back(cell.text);  // NULL: empty field
    print_row(fields);
  }
}

void print_json(const ResultSet& result, std::FILE* out) {
  // ordered_json: keys in column order, as the query wrote them.
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const auto& row : result.rows) {
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (size_t i = 0; i < row.size(); ++i) {
      const Cell& cell = row[i];
      nlohmann::ordered_json& value = object[result.columns[i]];
      if (cell.type == SQLITE_INTEGER)
        value = cell.integer;
      else if (cell.type == SQLITE_FLOAT)
        value = cell.real;
      else if (cell.type == SQLITE_NULL)
        value = nullptr;
      else
        value = cell.text;
    }
    rows.push_back(std::move(object));
  }
  // Guest text may hold bytes that are not UTF-8: replace them rather than fail.
  fmt::print(out, "{}\n",
             rows.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

}  // namespace

void run_query(Database& db, std::string_view sql, OutputFormat format, std::FILE* out) {
  std::string_view rest = sql;
  while (!rest.empty()) {
    std::string_view tail;
    Statement statement(db, rest, &tail);
    rest = tail;
    if (statement.empty()) continue;  // whitespace or a comment
    const ResultSet result = collect(statement);
    if (result.columns.empty()) continue;  // not a query: nothing to print
    switch (format) {
      case OutputFormat::kTable:
        print_table(result, out);
        break;
      case OutputFormat::kCsv:
        print_csv(result, out);
        break;
      case OutputFormat::kJson:
        print_json(result, out);
        break;
    }
  }
}

}  // namespace analyzer::sql
