// `rr-analyze query REC "SQL"`: SQL over a recording. The first query
// exports the recording to a cache (sql/query_cache.h); later ones reuse it
// until the recording changes.
#include <fmt/format.h>

#include <cstdio>
#include <map>

#include "sql/commands.h"
#include "sql/query_cache.h"
#include "sql/query_output.h"

namespace analyzer {
namespace {

struct QueryCommandOptions {
  RecordingOptions recording;
  std::string sql;
  sql::OutputFormat format = sql::OutputFormat::kTable;
  bool no_replay = false;
  bool no_forensics = false;
  bool timeline = false;
  std::string profile;
  bool rebuild = false;
};

int run_query_command(const QueryCommandOptions& options) {
  sql::ExportOptions export_options;
  export_options.key = options.recording.key();
  export_options.replay = !options.no_replay;
  export_options.forensics.enabled = !options.no_forensics;
  export_options.forensics.timeline = options.timeline;
  export_options.forensics.profile = options.profile;
  sql::CachedExport cached;
  try {
    cached =
        sql::ensure_cached_export(options.recording.recording, export_options, options.rebuild);
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
  command
      ->add_option("recording", options->recording.recording,
                   "recording directory (made by rr-vmm record)")
      ->required();
  command->add_option("sql", options->sql, "SQL to run (tables: docs/sql.md)")->required();
  const std::map<std::string, sql::OutputFormat> formats = {{"table", sql::OutputFormat::kTable},
                                                            {"csv", sql::OutputFormat::kCsv},
                                                            {"json", sql::OutputFormat::kJson}};
  command->add_option("--format", options->format, "table (default), csv or json")
      ->transform(CLI::CheckedTransformer(formats, CLI::ignore_case));
  command->add_option("--key", options->recording.key_file,
                      "key file (64 hex digits) for a MAC'd or encrypted recording");
  command->add_flag("--no-replay", options->no_replay,
                    "export only the log's tables (no serial_output, divergences)");
  command->add_flag("--no-forensics", options->no_forensics,
                    "skip the forensic tables (processes, kernel_log, mounts, net_devices, "
                    "process_events, syscalls, file_events) and their replay passes");
  command->add_flag("--timeline", options->timeline,
                    "also run the timeline passes (one more replay per group of kernel "
                    "functions) for process_events, syscalls, file_events");
  command->add_option("--profile", options->profile,
                      "ISF profile of the guest kernel (default: generated from the recorded "
                      "kernel ELF and cached, as for ps/dmesg)");
  command->add_flag("--rebuild", options->rebuild, "re-export even if the cache is current");
  command->callback(
      [options, &action] { action = [options] { return run_query_command(*options); }; });
}

}  // namespace analyzer
