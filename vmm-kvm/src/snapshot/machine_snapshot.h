#pragma once
// The whole machine in librr's snapshot format: guest RAM (sparse), the vCPU
// (registers, segments, FPU, MSRs, events), the guest clock, every device
// under its own name and the virtio-blk overlay's written sectors
// ("<disk device>-overlay"). Used by `rr-vmm run --snapshot-out`/`--restore`
// (which add the "machine" config section), by record (the initial snapshot)
// and by replay and the analyzer (restoring it).
#include <filesystem>
#include <optional>

#include "librr/crypto.h"
#include "machine/machine.h"
#include "snapshot/snapshot_config.h"

namespace librr {
class DeferredSync;  // librr/deferred_sync.h
}

namespace vmm {

// Version of the blobs this VMM writes ("vcpu0", "clock", device names).
inline constexpr uint32_t kMachineStateVersion = 1;

// Writes the snapshot; returns its BLAKE2b digest. The vCPU must be settled
// (Machine::settle_vcpu) if it stopped in the middle of a PIO/MMIO read.
// `config`, when given, is stored as the "machine" section. With
// `deferred_sync`, the file's fsync is left to it (librr/deferred_sync.h).
librr::Digest save_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                                    const std::optional<librr::Key>& key = std::nullopt,
                                    const SnapshotConfig* config = nullptr,
                                    librr::DeferredSync* deferred_sync = nullptr);

// Loads a snapshot into a freshly built machine with the same RAM size and
// devices. Throws librr::FormatError naming the section that is missing,
// damaged or of another version; librr::KeyError for a missing or wrong key.
void restore_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                              const std::optional<librr::Key>& key = std::nullopt);
// `ram_is_zero`: the machine's RAM was never written (a fresh anonymous
// mapping), so pages the snapshot does not store are left untouched instead
// of being zero-filled: a restored clone then commits only the guest's
// non-zero pages.
void restore_machine_snapshot(Machine& machine, const librr::SnapshotReader& reader,
                              bool ram_is_zero = false);

}  // namespace vmm
