#pragma once
// Fills the tables that come straight from the event log (interrupts,
// async_positions, inputs, frames, state_digests) in one sequential pass,
// and summarizes the log for the `recording` row.
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "librr/crypto.h"
#include "librr/events.h"
#include "librr/log.h"
#include "progress.h"
#include "sql/sqlite.h"

namespace analyzer::sql {

// The recording cannot be exported: missing files, or a log damaged
// somewhere other than its tail. The message names the file, chunk and
// offset (exit code 1).
class RecordingProblem : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LogSummary {
  librr::LogInfo info;
  uint64_t chunks = 0;
  uint64_t records = 0;
  std::array<uint64_t, librr::kEventTypeCount> counts{};  // indexed by EventType - 1
  std::optional<librr::Position> first, last;
  std::optional<librr::EndOfRecording> end;
  // Why the log stops early when it is a usable prefix (missing_end,
  // torn_tail: the recorder was killed); nullopt for a complete log.
  std::optional<librr::LogProblem> cut_short;
  std::map<std::string, librr::Position> checkpoint_refs;  // file name -> position

  uint64_t count(librr::EventType type) const { return counts[static_cast<size_t>(type) - 1]; }
};

// Reads the whole log into the tables. Throws RecordingProblem for a damaged
// log (the first problem librr's reader reports), librr::LogKeyError for a
// missing or wrong key.
LogSummary export_log_tables(Database& db, const std::filesystem::path& log_path,
                             const std::optional<librr::Key>& key);

// "52:54:00:12:34:56".
std::string format_mac(std::span<const uint8_t, 6> mac);

}  // namespace analyzer::sql
