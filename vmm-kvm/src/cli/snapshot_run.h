#pragma once
// `rr-vmm run` with snapshots: --clock virtual, --snapshot-at/--snapshot-out,
// --restore FILE and --clone N (docs/vmm.md, "Snapshots and clones").
#include "cli/run_command.h"

namespace vmm::cli {

// True when `options` asks for anything this file handles (else the plain run).
bool wants_snapshot_run(const RunOptions& options);

// Returns the process exit status: the guest's (or, with --clone, the first
// failing clone's), 2 with one line on stderr for bad input or a bad snapshot.
int run_with_snapshots(const RunOptions& options);

}  // namespace vmm::cli
