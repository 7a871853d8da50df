#include "recording_check.h"

#include <algorithm>
#include <string>

namespace analyzer {

RecordingCheck check_recording(const std::filesystem::path& path,
                               const std::optional<librr::Key>& key) {
  librr::RecordingDir dir = librr::RecordingDir::open(path);
  librr::LogReaderOptions options;
  options.key = key;
  options.write_index = false;  // inspecting must not modify the recording
  RecordingCheck check{dir, {}, {}, dir.verify_snapshot(key), dir.verify_checkpoints(key)};
  try {
    librr::LogReader reader(dir.log_path(), options);
    check.log_info = reader.info();
    check.log = reader.verify();
  } catch (const librr::LogFormatError& e) {
    // The file header itself is damaged: a problem of the recording, not of the caller.
    check.log.problem = librr::LogProblem{
        e.kind(), 0, static_cast<uint64_t>(std::max<int64_t>(e.offset(), 0)), e.what()};
  }
  check.log_bytes = std::filesystem::file_size(dir.log_path());
  check.snapshot_bytes = std::filesystem::file_size(dir.snapshot_path());
  return check;
}

namespace {

// A structurally sound snapshot whose digest disagrees with the manifest was
// replaced or edited: report that, not the report's "none".
std::string snapshot_problem_kind(const librr::SnapshotCheck& check) {
  if (!check.report.ok) return std::string(librr::to_string(check.report.problem));
  return "digest_mismatch";
}

}  // namespace

std::optional<RecordingCheck::Problem> RecordingCheck::first_problem() const {
  if (!snapshot.ok)
    return Problem{"snapshot", snapshot_problem_kind(snapshot), snapshot.report.offset,
                   snapshot.file.string(), snapshot.message};
  if (log.problem)
    return Problem{"log", std::string(librr::log_problem_kind_name(log.problem->kind)),
                   static_cast<int64_t>(log.problem->offset), dir.log_path().string(),
                   log.problem->to_string()};
  for (const librr::SnapshotCheck& checkpoint : checkpoints)
    if (!checkpoint.ok)
      return Problem{"checkpoint", snapshot_problem_kind(checkpoint), checkpoint.report.offset,
                     checkpoint.file.string(), checkpoint.message};
  return std::nullopt;
}

}  // namespace analyzer
