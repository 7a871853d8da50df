#pragma once
// `rr-vmm snapshot info FILE [--key K]`: checks a snapshot end to end and
// lists what it holds (the machine it restores, every section). Snapshots
// themselves are written by `rr-vmm run --snapshot-out` (cli/snapshot_run.h).
#include <CLI/CLI.hpp>

namespace vmm::cli {

void add_snapshot_command(CLI::App& app);

}  // namespace vmm::cli
