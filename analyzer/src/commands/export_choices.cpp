#include "commands/export_choices.h"

namespace analyzer {

void ExportChoices::add_to(CLI::App& command) {
  command
      .add_option("recording", recording.recording, "recording directory (made by rr-vmm record)")
      ->required();
  command.add_option("--key", recording.key_file,
                     "key file (64 hex digits) for a MAC'd or encrypted recording");
  command.add_flag("--no-replay", no_replay,
                   "only the log's tables: skip the replay (serial_output, divergences stay "
                   "empty)");
  command.add_flag("--no-forensics", no_forensics,
                   "skip the forensic tables (processes, kernel_log, mounts, net_devices, "
                   "process_events, syscalls, file_events, net_events) and their replay passes");
  command.add_flag("--timeline,!--no-timeline", timeline,
                   "--no-timeline skips the timeline passes (one more replay per group of kernel "
                   "functions, docs/forensics.md): process_events, syscalls, file_events, "
                   "net_events stay empty. --timeline (the default) runs them");
  command
      .add_option("--timeline-kinds", timeline_kinds,
                  "event kinds the timeline collects, comma-separated (default: all; as "
                  "`timeline --kinds`): fewer kinds, fewer replay passes")
      ->delimiter(',');
  command.add_option("--profile", profile,
                     "ISF profile of the guest kernel (default: generated from the recorded "
                     "kernel ELF and cached, as for ps/dmesg)");
}

sql::ExportOptions ExportChoices::export_options() const {
  sql::ExportOptions options;
  options.key = recording.key();
  options.replay = !no_replay;
  options.forensics.enabled = !no_forensics;
  options.forensics.timeline = timeline;
  options.forensics.timeline_kinds.insert(timeline_kinds.begin(), timeline_kinds.end());
  options.forensics.profile = profile;
  return options;
}

}  // namespace analyzer
