// `rr-analyze export REC --db FILE`: the recording as SQLite tables
// (schemas/sql/), written atomically.
#include <fmt/format.h>

#include "sql/commands.h"
#include "sql/exporter.h"

namespace analyzer {
namespace {

struct ExportCommandOptions {
  RecordingOptions recording;
  std::string db;
  bool no_replay = false;
};

int run_export(const ExportCommandOptions& options) {
  sql::ExportOptions export_options;
  export_options.key = options.recording.key();
  export_options.replay = !options.no_replay;
  try {
    const sql::ExportResult result =
        sql::export_recording(options.recording.recording, options.db, export_options);
    fmt::print(stderr,
               "rr-analyze: exported {} records ({} interrupts, {} inputs), {} serial lines, "
               "replay {}, to {}\n",
               result.log.records, result.log.count(librr::EventType::interrupt_delivery),
               result.log.count(librr::EventType::input), result.serial_lines, result.replay_status,
               options.db);
    if (result.log.cut_short)
      fmt::print(stderr, "rr-analyze: warning: the recording was cut short ({})\n",
                 result.log.cut_short->to_string());
    return kExitOk;
  } catch (const sql::RecordingProblem& e) {
    fmt::print(stderr, "rr-analyze: {}\n", e.what());
    return kExitProblem;
  } catch (const sql::SqlError& e) {
    fmt::print(stderr, "rr-analyze: {}\n", e.what());
    return kExitUsage;
  }
}

}  // namespace

void add_export_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<ExportCommandOptions>();
  CLI::App* command =
      app.add_subcommand("export",
                         "write a recording into SQLite tables (schemas/sql/): log records, serial "
                         "output and divergences found by replaying");
  command
      ->add_option("recording", options->recording.recording,
                   "recording directory (made by rr-vmm record)")
      ->required();
  command->add_option("--key", options->recording.key_file,
                      "key file (64 hex digits) for a MAC'd or encrypted recording");
  command->add_option("--db", options->db, "SQLite file to write (replaced atomically)")
      ->required();
  command->add_flag("--no-replay", options->no_replay,
                    "only the log's tables: skip the replay (serial_output, divergences stay "
                    "empty)");
  command->callback([options, &action] { action = [options] { return run_export(*options); }; });
}

}  // namespace analyzer
