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
  bool no_forensics = false;
  bool timeline = false;
  std::string profile;
};

int run_export(const ExportCommandOptions& options) {
  sql::ExportOptions export_options;
  export_options.key = options.recording.key();
  export_options.replay = !options.no_replay;
  export_options.forensics.enabled = !options.no_forensics;
  export_options.forensics.timeline = options.timeline;
  export_options.forensics.profile = options.profile;
  try {
    const sql::ExportResult result =
        sql::export_recording(options.recording.recording, options.db, export_options);
    fmt::print(stderr,
               "rr-analyze: exported {} records ({} interrupts, {} inputs), {} serial lines, "
               "replay {}, to {}\n",
               result.log.records, result.log.count(librr::EventType::interrupt_delivery),
               result.log.count(librr::EventType::input), result.serial_lines, result.replay_status,
               options.db);
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
  command->add_flag("--no-forensics", options->no_forensics,
                    "skip the forensic tables (processes, kernel_log, mounts, net_devices, "
                    "process_events, syscalls, file_events) and their replay passes");
  command->add_flag("--timeline", options->timeline,
                    "also run the timeline passes (one more replay per group of kernel "
                    "functions) for process_events, syscalls, file_events");
  command->add_option("--profile", options->profile,
                      "ISF profile of the guest kernel (default: generated from the recorded "
                      "kernel ELF and cached, as for ps/dmesg)");
  command->callback([options, &action] { action = [options] { return run_export(*options); }; });
}

}  // namespace analyzer
