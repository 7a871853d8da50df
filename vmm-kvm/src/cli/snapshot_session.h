#pragma once
// A machine for `rr-vmm run` with snapshot support, built either by booting
// a guest (with --clock virtual and/or --snapshot-out) or from a snapshot
// (--restore, once per clone). Owns everything the machine points to.
#include <memory>
#include <optional>
#include <string>

#include "cli/run_command.h"
#include "cli/snapshot_trigger.h"
#include "clock/virtual_clock.h"
#include "devices/virtio_fd.h"
#include "librr/crypto.h"
#include "librr/snapshot.h"
#include "machine/machine.h"
#include "snapshot/snapshot_config.h"

namespace vmm::cli {

// Where one machine's console goes.
struct ConsoleTarget {
  int fd = 1;          // stdout, or a --serial-out-dir file
  std::string prefix;  // "[clone 2] " when clones share stdout; "" otherwise
};

struct SnapshotSession {
  // Declared before the machine, which points into them.
  std::unique_ptr<SerialInput> input;
  virtio::UniqueFd output_fd;
  std::unique_ptr<SerialOutput> console;
  std::unique_ptr<SerialOutput> watcher;  // serial:TEXT triggers, in front of `console`
  std::unique_ptr<VirtualClock> virtual_clock;
  std::unique_ptr<Machine> machine;
  SnapshotConfig config;  // what a snapshot of this machine records
  // Raised by serial:TEXT matches once the run loop has installed it.
  SnapshotRequests* requests = nullptr;
};

// Boots the guest named by `options` (clock from --clock/--preempt-ms).
// Throws librr::Error for bad input.
std::unique_ptr<SnapshotSession> boot_session(const RunOptions& options,
                                              const std::vector<SnapshotTrigger>& triggers);

// Checks a snapshot before any machine is built: readable, intact (every
// frame and the digest; a damaged part is named by its section), written by
// these device models, its disk image unchanged. Throws librr::Error with a
// one-line cause.
SnapshotConfig check_snapshot(const std::string& path, const std::optional<librr::Key>& key,
                              const RunOptions& options);

// Builds the machine `config` describes and loads the snapshot into it.
// `overlay_path` "" keeps the disk's writes in memory.
std::unique_ptr<SnapshotSession> restore_session(
    const std::string& path, const std::optional<librr::Key>& key, const SnapshotConfig& config,
    const RunOptions& options, const std::vector<SnapshotTrigger>& triggers,
    const ConsoleTarget& console, const std::string& overlay_path);

}  // namespace vmm::cli
