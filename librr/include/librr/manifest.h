#pragma once
// The manifest of a recording (manifest.json): what made it, on which host,
// for which guest, and the digests that tie the recording's files together.
// A plain struct; JSON encoding stays inside librr. Fields a newer librr
// writes are kept in `extra_json` and written back unchanged, so an older
// tool that edits a manifest (e.g. adds a checkpoint) loses nothing.
// Layout: schemas/recording-format.md.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "librr/host_identity.h"
#include "librr/version.h"

namespace librr {

// A newer minor version adds fields (readable here); a newer major version
// changes meaning and is refused.
inline constexpr uint32_t kManifestFormatMajor = 1;
inline constexpr uint32_t kManifestFormatMinor = 1;  // 1.1: tools.replay_rules_version

struct ToolVersions {
  std::string librr = std::string(library_version());
  std::string vmm_name;
  std::string vmm_version;
  std::string vmm_build_id;  // e.g. git commit of the VMM
  std::string device_model_version;
  // How the VMM interprets the recording at replay, apart from its devices:
  // what a state digest hashes, which events it derives instead of logging.
  // VMM-defined; "" (absent: manifests before it existed) means the VMM's
  // first rules. Unlike device_model_version it does not concern snapshots.
  std::string replay_rules_version;
  std::string extra_json = "{}";
};

struct Checkpoint {
  std::string file;             // relative to the recording, e.g. "checkpoints/000001.rrsnap"
  uint64_t record_index = 0;    // log records that precede the checkpoint
  std::string snapshot_digest;  // BLAKE2b-256 hex of the checkpoint's snapshot file
  std::string extra_json = "{}";
};

struct Manifest {
  uint32_t format_major = kManifestFormatMajor;
  uint32_t format_minor = kManifestFormatMinor;
  ToolVersions tools;
  HostIdentity host;
  // Free-form guest configuration: "memory_bytes", "kernel", "kernel_digest",
  // "cmdline", "name", ... Values are strings.
  std::map<std::string, std::string> guest;
  std::string created_utc;  // ISO 8601, e.g. "2026-11-25T22:45:52Z"
  std::string snapshot_file = "snapshot.rrsnap";
  std::string snapshot_digest;           // BLAKE2b-256 hex of the initial snapshot file
  std::string snapshot_key_fingerprint;  // set when the snapshot is encrypted
  std::string log_file = "events.rrlog";
  std::vector<Checkpoint> checkpoints;
  std::string extra_json = "{}";  // unknown top-level fields

  // Pretty-printed JSON with a trailing newline.
  std::string to_json_string() const;
  // Throws FormatError naming `source` and the offending field for malformed
  // JSON, missing or mistyped fields, unsafe file names, or a newer major version.
  static Manifest from_json_string(std::string_view text,
                                   std::string_view source = "manifest.json");
};

// The current time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now_iso8601();

}  // namespace librr
