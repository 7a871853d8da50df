#pragma once
// A recording is a directory:
//   manifest.json      what, where, when; digests of the snapshots (manifest.h)
//   snapshot.rrsnap    initial machine snapshot (snapshot.h)
//   events.rrlog       event log, and its rebuildable index events.rrlog.idx
//   checkpoints/       optional later snapshots listed in the manifest
// RecordingDir names these files, refuses to overwrite a recording, says
// what is missing from a damaged one, and checks the snapshots against the
// digests in the manifest. Layout: schemas/recording-format.md.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/manifest.h"
#include "librr/snapshot.h"

namespace librr {

class DeferredSync;  // deferred_sync.h

// Result of checking a snapshot file against the digest the manifest holds.
struct SnapshotCheck {
  bool ok = false;
  std::filesystem::path file;
  std::string message;  // "ok", or what is wrong and what it means
  SnapshotVerifyReport report;
};

class RecordingDir {
 public:
  static constexpr const char* kManifestFile = "manifest.json";
  static constexpr const char* kCheckpointsDir = "checkpoints";

  // Creates the directory (and its parents) and checkpoints/. Refuses an
  // existing non-empty directory: a recording is never overwritten. The
  // manifest starts with this host's identity, the creation time and
  // librr's version; it is written by write_manifest().
  static RecordingDir create(const std::filesystem::path& path);
  // Opens an existing recording: reads the manifest and checks that every
  // file it names exists. Throws Error naming what is missing, FormatError
  // for a damaged manifest.
  static RecordingDir open(const std::filesystem::path& path);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path manifest_path() const { return root_ / kManifestFile; }
  std::filesystem::path snapshot_path() const { return root_ / manifest_.snapshot_file; }
  std::filesystem::path log_path() const { return root_ / manifest_.log_file; }
  // The log's index is a cache the log reader rebuilds; it may be missing.
  std::filesystem::path log_index_path() const;
  std::filesystem::path checkpoints_dir() const { return root_ / kCheckpointsDir; }
  // A path for a new checkpoint snapshot: checkpoints/<6-digit number>.rrsnap.
  std::filesystem::path new_checkpoint_path(uint64_t number) const;
  std::filesystem::path checkpoint_path(const Checkpoint& checkpoint) const {
    return root_ / checkpoint.file;
  }

  const Manifest& manifest() const { return manifest_; }
  Manifest& manifest() { return manifest_; }
  // Writes manifest() to manifest.json atomically (temporary file, fsync, rename).
  // With `deferred`, for the first write of a new recording: the fsyncs are
  // left to it (write_file_atomically).
  void write_manifest(DeferredSync* deferred = nullptr) const;

  // Recomputes the initial snapshot's digest (and checks its structure) and
  // compares it with the manifest: a mismatch means the snapshot was
  // replaced, tampered with or corrupted.
  SnapshotCheck verify_snapshot(const std::optional<Key>& key = std::nullopt) const;
  // The same for every checkpoint listed in the manifest.
  std::vector<SnapshotCheck> verify_checkpoints(const std::optional<Key>& key = std::nullopt) const;

 private:
  RecordingDir(std::filesystem::path root, Manifest manifest)
      : root_(std::move(root)), manifest_(std::move(manifest)) {}
  std::filesystem::path root_;
  Manifest manifest_;
};

}  // namespace librr
