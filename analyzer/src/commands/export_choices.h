#pragma once
// What `export` and `query` share: the recording with its key, and what to
// put into the database (sql/exporter.h). Both commands register the same
// options with the same help, so the two stay in step.
#include <string>
#include <vector>

#include "commands/command.h"
#include "sql/exporter.h"

namespace analyzer {

struct ExportChoices {
  RecordingOptions recording;
  bool no_replay = false;
  bool no_forensics = false;
  bool timeline = true;  // --no-timeline: false
  std::vector<std::string> timeline_kinds;
  std::string profile;

  // The recording positional argument, --key, --no-replay, --no-forensics,
  // --no-timeline (--timeline) and --profile.
  void add_to(CLI::App& command);
  // Throws librr::Error for an unreadable --key file.
  sql::ExportOptions export_options() const;
};

}  // namespace analyzer
