// `rr-analyze export REC --db FILE`: the recording as SQLite tables
// (schemas/sql/), written atomically.
#include <fmt/format.h>

#include "commands/export_choices.h"
#include "sql/commands.h"
#include "sql/exporter.h"

namespace analyzer {
namespace {

struct ExportCommandOptions {
  ExportChoices choices;
  std::string db;
};

int run_export(const ExportCommandOptions& options) {
  const sql::ExportOptions export_options = options.choices.export_options();
  try {
    const sql::ExportResult result =
        sql::export_recording(options.choices.recording.recording, options.db, export_options);
    fmt::print(stderr,
               "rr-analyze: exported {} records ({} interrupts, {} inputs), {} serial lines, "
               "replay {}, to {}\n",
               result.log.records, result.log.count(librr::EventType::interrupt_delivery),
               result.log.count(librr::EventType::input), result.serial_lines, result.replay_status,
               options.db);
    if (result.divergences > 0)
      fmt::print(stderr, "rr-analyze: replay diverged: {}\n", result.replay_message);
    const sql::ForensicsOutcome& forensics = result.forensics;
    if (forensics.status == "skipped")
      fmt::print(stderr, "rr-analyze: forensic tables skipped\n");
    else
      fmt::print(stderr,
                 "rr-analyze: forensics {}{}: {} processes ({} samples every {} landmarks), {} "
                 "kernel log records, {} timeline events{}\n",
                 forensics.status, forensics.os ? " (" + *forensics.os + ")" : "",
                 forensics.processes, forensics.samples, forensics.sample_interval.value_or(0),
                 forensics.kernel_log, forensics.events,
                 forensics.message ? ": " + *forensics.message : "");
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
  options->choices.add_to(*command);
  command->add_option("--db", options->db, "SQLite file to write (replaced atomically)")
      ->required();
  command->callback([options, &action] { action = [options] { return run_export(*options); }; });
}

}  // namespace analyzer
