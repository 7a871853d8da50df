#pragma once
// What a snapshot needs besides the machine state to be restored on its own
// (`rr-vmm run --restore FILE`): how the machine was built (RAM size, clock,
// which virtio devices, the disk's base image) and which device models wrote
// it. Stored as the JSON blob section "machine" of the snapshot.
#include <cstdint>
#include <optional>
#include <string>

#include "librr/snapshot.h"

namespace vmm {

inline constexpr const char* kSnapshotConfigSection = "machine";
inline constexpr uint32_t kSnapshotConfigVersion = 1;

// How guest time advances (see snapshot/virtual_time_runner.h).
struct ClockSettings {
  bool virtual_time = false;  // false: host time (HostClock)
  uint64_t ns_per_exit = 20'000;
  uint64_t preempt_ns = 0;  // 0: the vCPU is never stopped asynchronously
};

struct SnapshotConfig {
  std::string device_model_version;
  uint64_t ram_bytes = 0;
  ClockSettings clock;
  std::string guest;    // what was booted (guest name or kernel path), for messages
  std::string cmdline;  // the command line it was booted with
  bool has_net = false;
  // virtio-blk: the base image (absolute path), its size and BLAKE2b digest.
  // The overlay's contents are in the snapshot ("disk0-overlay").
  std::string disk_image;
  uint64_t disk_sectors = 0;
  std::string disk_digest;

  std::string to_json() const;
  // Throws librr::FormatError naming the field that is missing or malformed.
  static SnapshotConfig from_json(std::string_view text);
};

// Reads and parses the "machine" section. Throws librr::FormatError when the
// section is missing (e.g. a recording's initial snapshot) or malformed.
SnapshotConfig read_snapshot_config(const librr::SnapshotReader& reader);

}  // namespace vmm
