#include "librr/recording.h"

#include <cstdio>
#include <fstream>

#include "librr/error.h"
#include "posix_file.h"

namespace librr {

namespace fs = std::filesystem;

namespace {

SnapshotCheck check_snapshot(const fs::path& file, const std::string& role,
                             const std::string& expected_digest, const std::optional<Key>& key) {
  SnapshotCheck check;
  check.file = file;
  check.report = SnapshotReader::verify_file(file, key);
  if (!check.report.ok) {
    check.message = role + " " + file.string() + " is damaged (" +
                    std::string(to_string(check.report.problem)) + "): " + check.report.message;
    return check;
  }
  const std::string actual = to_hex(*check.report.computed_digest);
  if (expected_digest.empty()) {
    check.message = role + " " + file.string() + ": the manifest records no digest for it";
  } else if (actual != expected_digest) {
    check.message = role + " " + file.string() + " has digest " + actual +
                    " but the manifest records " + expected_digest +
                    ": the snapshot was replaced, tampered with or corrupted";
  } else {
    check.ok = true;
    check.message = "ok";
  }
  return check;
}

}  // namespace

RecordingDir RecordingDir::create(const fs::path& path) {
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (!fs::is_directory(path, ec))
      throw Error("cannot create recording " + path.string() +
                  ": it exists and is not a directory");
    if (!fs::is_empty(path, ec))
      throw Error("refusing to create recording in " + path.string() +
                  ": the directory is not empty (a recording is never overwritten)");
  }
  fs::create_directories(path / kCheckpointsDir, ec);
  if (ec)
    throw SystemError("cannot create recording directory " + path.string() + ": " + ec.message());
  Manifest manifest;
  manifest.host = current_host_identity();
  manifest.created_utc = utc_now_iso8601();
  return RecordingDir(path, std::move(manifest));
}

RecordingDir RecordingDir::open(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("recording " + path.string() + " does not exist");
  if (!fs::is_directory(path, ec))
    throw Error(path.string() + " is not a recording: not a directory");
  const fs::path manifest_file = path / kManifestFile;
  if (!fs::exists(manifest_file, ec))
    throw Error(path.string() + " is not a recording: " + kManifestFile + " is missing");
  std::ifstream in(manifest_file);
  if (!in) throw SystemError("cannot read " + manifest_file.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  RecordingDir dir(path, Manifest::from_json_string(text, manifest_file.string()));

  auto require = [&](const fs::path& file, const std::string& role) {
    if (!fs::is_regular_file(file, ec))
      throw Error("recording " + path.string() + " is incomplete: " + role + " " +
                  fs::relative(file, path, ec).string() + " is missing");
  };
  require(dir.snapshot_path(), "initial snapshot");
  require(dir.log_path(), "event log");
  for (const auto& checkpoint : dir.manifest_.checkpoints)
    require(dir.checkpoint_path(checkpoint), "checkpoint");
  return dir;
}

fs::path RecordingDir::log_index_path() const {
  fs::path p = log_path();
  p += ".idx";
  return p;
}

fs::path RecordingDir::new_checkpoint_path(uint64_t number) const {
  char name[32];
  std::snprintf(name, sizeof name, "%06llu.rrsnap", static_cast<unsigned long long>(number));
  return checkpoints_dir() / name;
}

void RecordingDir::write_manifest(DeferredSync* deferred) const {
  write_file_atomically(manifest_path(), manifest_.to_json_string(), deferred);
}

SnapshotCheck RecordingDir::verify_snapshot(const std::optional<Key>& key) const {
  return check_snapshot(snapshot_path(), "initial snapshot", manifest_.snapshot_digest, key);
}

std::vector<SnapshotCheck> RecordingDir::verify_checkpoints(const std::optional<Key>& key) const {
  std::vector<SnapshotCheck> checks;
  for (const auto& checkpoint : manifest_.checkpoints)
    checks.push_back(
        check_snapshot(checkpoint_path(checkpoint), "checkpoint", checkpoint.snapshot_digest, key));
  return checks;
}

}  // namespace librr
