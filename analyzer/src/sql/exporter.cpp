#include "sql/exporter.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "librr/recording.h"
#include "sql/output_file.h"
#include "sql/replay_tables.h"
#include "sql/schema.h"

namespace analyzer::sql {
namespace {

namespace fs = std::filesystem;

librr::RecordingDir open_recording(const fs::path& recording) {
  try {
    return librr::RecordingDir::open(recording);
  } catch (const librr::Error& e) {
    throw RecordingProblem(e.what());
  }
}

std::optional<std::string> guest_field(const librr::Manifest& manifest, const std::string& name) {
  const auto it = manifest.guest.find(name);
  if (it == manifest.guest.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> guest_integer(const librr::Manifest& manifest, const std::string& name) {
  const auto text = guest_field(manifest, name);
  if (!text) return std::nullopt;
  try {
    return std::stoll(*text);
  } catch (const std::exception&) {
    return std::nullopt;  // not a number: the text is still in guest_json
  }
}

std::optional<std::string> position_text(const std::optional<librr::Position>& pos) {
  return pos ? std::optional(pos->to_string()) : std::nullopt;
}

void write_recording_row(Database& db, const librr::RecordingDir& dir, const LogSummary& log,
                         const ReplayTablesResult& replay, const ForensicsOutcome& forensics,
                         const std::string& cache_key) {
  using librr::EventType;
  const librr::Manifest& m = dir.manifest();
  const nlohmann::json guest(m.guest);
  db.prepare(
        "INSERT INTO recording (recording_path, created_utc, vmm_name, vmm_version, "
        "vmm_build_id, device_model_version, replay_rules_version, librr_version, host_vendor, "
        "host_cpu, host_family, "
        "host_model, host_stepping, guest_name, guest_memory_bytes, guest_json, manifest_json, "
        "snapshot_digest, log_bytes, log_chunks, log_records, log_mac, log_encrypted, terminated, "
        "log_problem, first_position, last_position, end_landmark, end_reason, exit_status, "
        "interrupt_count, async_position_count, input_count, state_digest_count, "
        "checkpoint_ref_count, end_of_recording_count, replay_status, replay_end_position, "
        "replay_message, exported_utc, cache_key, forensics_status, forensics_os, "
        "forensics_profile, forensics_message, forensics_sample_interval, forensics_samples) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(fs::absolute(dir.root()).lexically_normal().string(), m.created_utc, m.tools.vmm_name,
           m.tools.vmm_version, m.tools.vmm_build_id, m.tools.device_model_version,
           m.tools.replay_rules_version, m.tools.librr, m.host.vendor, m.host.model_name,
           m.host.family, m.host.model, m.host.stepping, guest_field(m, "name"),
           guest_integer(m, "memory_bytes"), guest.dump(), m.to_json_string(), m.snapshot_digest,
           uint64_t{fs::file_size(dir.log_path())}, log.chunks, log.records, log.info.mac,
           log.info.encrypted, log.end.has_value(),
           log.cut_short ? std::optional(log.cut_short->to_string()) : std::nullopt,
           position_text(log.first), position_text(log.last),
           log.last ? log.last->landmark : uint64_t{0},
           log.end ? std::optional(log.end->reason) : std::nullopt,
           log.end ? std::optional(log.end->exit_status) : std::nullopt,
           log.count(EventType::interrupt_delivery), log.count(EventType::async_position),
           log.count(EventType::input), log.count(EventType::state_digest),
           log.count(EventType::checkpoint_ref), log.count(EventType::end_of_recording),
           replay.status, position_text(replay.end), replay.message, librr::utc_now_iso8601(),
           cache_key, forensics.status, forensics.os, forensics.profile, forensics.message,
           forensics.sample_interval, forensics.samples);
}

void write_checkpoints(Database& db, const librr::RecordingDir& dir, const LogSummary& log) {
  Statement insert = db.prepare(
      "INSERT INTO checkpoints (number, file, record_index, position, landmark, snapshot_digest, "
      "file_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)");
  uint64_t number = 0;
  for (const librr::Checkpoint& checkpoint : dir.manifest().checkpoints) {
    std::optional<librr::Position> pos;
    // A CheckpointRef names the file by its name inside checkpoints/ or by
    // the manifest's relative path; accept either.
    for (const std::string& name : {checkpoint.file, fs::path(checkpoint.file).filename().string()})
      if (auto it = log.checkpoint_refs.find(name); !pos && it != log.checkpoint_refs.end())
        pos = it->second;
    std::error_code error;
    const auto bytes = fs::file_size(dir.checkpoint_path(checkpoint), error);
    insert.run(++number, checkpoint.file, checkpoint.record_index, position_text(pos),
               pos ? std::optional(pos->landmark) : std::nullopt, checkpoint.snapshot_digest,
               error ? std::nullopt : std::optional<uint64_t>(bytes));
  }
}

// Size, modification time and the last bytes of a file: cheap, and changes
// whenever the file is appended to, rewritten or replaced.
std::string file_identity(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "missing";
  constexpr std::streamoff kTailBytes = 4096;
  std::ifstream in(path, std::ios::binary);
  const std::streamoff size = info.st_size;
  in.seekg(std::max<std::streamoff>(0, size - kTailBytes));
  std::vector<uint8_t> tail(static_cast<size_t>(std::min(size, kTailBytes)));
  in.read(reinterpret_cast<char*>(tail.data()), static_cast<std::streamsize>(tail.size()));
  return fmt::format("{}:{}.{:09}:{:016x}", info.st_size, info.st_mtim.tv_sec, info.st_mtim.tv_nsec,
                     librr::checksum64(tail));
}

}  // namespace

std::string export_cache_key(const fs::path& recording, const ExportOptions& options) {
  const librr::RecordingDir dir = open_recording(recording);
  const ForensicsOptions& forensics = options.forensics;
  // The forensic part: off, or how it ran and with which profile file (a
  // generated profile is named by the kernel digest, already in the manifest).
  const std::string forensics_key =
      !options.replay || !forensics.enabled
          ? "0"
          : fmt::format("1;timeline={};kinds={};profile={}", forensics.timeline ? 1 : 0,
                        fmt::join(forensics.timeline_kinds, ","),
                        forensics.profile.empty() ? "cached" : file_identity(forensics.profile));
  return fmt::format("log={};manifest={};schema={};replay={};forensics={}",
                     file_identity(dir.log_path()), file_identity(dir.manifest_path()),
                     schema_digest().substr(0, 16), options.replay ? 1 : 0, forensics_key);
}

ExportResult export_recording(const fs::path& recording, const fs::path& db_path,
                              const ExportOptions& options) {
  const librr::RecordingDir dir = open_recording(recording);
  const std::string cache_key = export_cache_key(recording, options);
  AtomicOutputFile output(db_path);
  ExportResult result;
  {
    Database db(output.temporary_path(), Database::Mode::kCreate);
    // The temporary file is thrown away on any failure, so SQLite's own
    // crash safety (journal, syncs) would only slow the export down.
    db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN");
    create_tables(db);
    result.log = export_log_tables(db, dir.log_path(), options.key);
    write_checkpoints(db, dir, result.log);
    const uint64_t end_landmark = result.log.last ? result.log.last->landmark : 0;
    ForensicsOptions forensics_options = options.forensics;
    forensics_options.enabled = forensics_options.enabled && options.replay;
    ExportForensics forensics(dir, forensics_options, end_landmark);
    ReplayTablesResult replay{"skipped", std::nullopt, "export --no-replay", 0, 0};
    if (options.replay)
      replay = export_replay_tables(db, dir, options.key, end_landmark, forensics.observer());
    result.forensics = forensics.finish(db, replay.status, options.key);
    write_recording_row(db, dir, result.log, replay, result.forensics, cache_key);
    db.exec("COMMIT");
    db.close();
    result.replay_status = replay.status;
    result.replay_message = replay.message;
    result.serial_lines = replay.serial_lines;
    result.divergences = replay.divergences;
  }
  output.commit();
  return result;
}

}  // namespace analyzer::sql
