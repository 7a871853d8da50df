#pragma once
// Reads everything `info` and `verify` report about a recording: manifest,
// event-log verification, snapshot and checkpoint checks. One pass, shared by
// both commands so they never disagree.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/log.h"
#include "librr/recording.h"

namespace analyzer {

struct RecordingCheck {
  librr::RecordingDir dir;
  librr::LogInfo log_info;
  librr::VerifyReport log;
  librr::SnapshotCheck snapshot;
  std::vector<librr::SnapshotCheck> checkpoints;
  uintmax_t log_bytes = 0;
  uintmax_t snapshot_bytes = 0;

  // The first problem in the order a reader would meet it, if any.
  struct Problem {
    std::string component;  // "log", "snapshot", "checkpoint"
    std::string kind;       // e.g. "bad_mac", "checksum"
    int64_t offset = -1;    // byte offset in that file
    std::string file;
    std::string message;
  };
  std::optional<Problem> first_problem() const;
};

// Throws librr::Error (missing recording, unreadable manifest, key problems).
RecordingCheck check_recording(const std::filesystem::path& path,
                               const std::optional<librr::Key>& key);

}  // namespace analyzer
