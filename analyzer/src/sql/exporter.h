#pragma once
// `rr-analyze export`: a recording into a new SQLite database whose tables
// are declared in schemas/sql/. The database appears complete or not at all:
// it is written as FILE.tmp in one transaction and renamed over FILE.
#include <filesystem>
#include <optional>
#include <string>

#include "librr/crypto.h"
#include "sql/forensics_export.h"
#include "sql/log_tables.h"

namespace analyzer::sql {

struct ExportOptions {
  std::optional<librr::Key> key;
  bool replay = true;  // replay the recording for serial_output and divergences
  // The forensic tables (processes, kernel_log, ...); need the replay.
  ForensicsOptions forensics;
};

struct ExportResult {
  LogSummary log;
  std::string replay_status;  // as in recording.replay_status
  std::string replay_message;
  uint64_t serial_lines = 0;
  uint64_t divergences = 0;
  ForensicsOutcome forensics;
};

// Throws RecordingProblem (missing or damaged recording), librr::Error and
// SqlError (cannot write FILE); on any failure FILE is left as it was.
ExportResult export_recording(const std::filesystem::path& recording,
                              const std::filesystem::path& db_path, const ExportOptions& options);

// Identifies what a database was exported from: the log's and manifest's
// sizes, modification times and tail bytes, the schema digest, whether
// replay and the forensic passes ran and the profile given. `query`
// re-exports its cache when this changes.
std::string export_cache_key(const std::filesystem::path& recording, const ExportOptions& options);

}  // namespace analyzer::sql
