// `rr-analyze query REC "SQL"`: SQL over a recording. The first query
// exports the recording to a cache (sql/query_cache.h); later ones reuse it
// until the recording changes.
#include <fmt/format.h>

#include <cstdio>
#include <map>

#include "commands/export_choices.h"
#include "sql/commands.h"
#include "sql/query_cache.h"
#include "sql/query_output.h"

namespace analyzer {
namespace {

struct QueryCommandOptions {
  ExportChoices choices;
  std::string sql;
  sql::OutputFormat format = sql::OutputFormat::kTable;
  bool rebuild = false;
};

int run_query_command(const QueryCommandOptions& options) {
  const sql::ExportOptions export_options = options.choices.export_options();
  sql::CachedExport cached;
  try {
    cached = sql::ensure_cached_export(options.choices.recording.recording, export_options,
                                       options.rebuild);
  } catch (const sql::RecordingProblem& e) {
    fmt::print(stderr, "rr-analyze: {}\n", e.what());
    return kExitProblem;
  }
  if (cached.rebuilt) fmt::print(stderr, "rr-analyze: exported to {}\n", cached.path.string());
  // Read-only: a query cannot alter the cache behind the next query's back.
  sql::Database db(cached.path, sql::Database::Mode::kReadOnly);
  try {
    sql::run_query(db, options.sql, options.format, stdout);
  } catch (const sql::SqlError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "rr-analyze: SQL error: {}\n", e.sqlite_message());
    return kExitUsage;
  }
  return kExitOk;
}

}  // namespace

void add_query_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<QueryCommandOptions>();
  CLI::App* command =
      app.add_subcommand("query",
                         "run SQL over a recording's tables (exported on first use, cached as "
                         "REC/analysis.sqlite)");
  options->choices.add_to(*command);
  command->add_option("sql", options->sql, "SQL to run (tables: docs/sql.md)")->required();
  const std::map<std::string, sql::OutputFormat> formats = {{"table", sql::OutputFormat::kTable},
                                                            {"csv", sql::OutputFormat::kCsv},
                                                            {"json", sql::OutputFormat::kJson}};
  command->add_option("--format", options->format, "table (default), csv or json")
      ->transform(CLI::CheckedTransformer(formats, CLI::ignore_case));
  command->add_flag("--rebuild", options->rebuild, "re-export even if the cache is current");
  command->callback(
      [options, &action] { action = [options] { return run_query_command(*options); }; });
}

}  // namespace analyzer
