#pragma once
// In-memory checkpoints of a replay: everything needed to continue replaying
// from a position as if the replay had got there by itself. That is the
// machine (guest RAM, vCPU, device models, guest clock, the disk sectors the
// guest wrote) plus the replay's own state (log position, memory shadow,
// serial bytes in flight).
//
// Guest RAM and the shadow are stored as 4 KiB pages shared between
// checkpoints: a page equal to the same page of the previous checkpoint (or,
// for the shadow, to the same RAM page) is not copied again, and zero pages
// cost nothing. So a checkpoint costs the pages the guest changed since the
// previous one, found by comparing memory (no KVM dirty logging, which costs
// ~7 us per first write on this host, see HOST-KVM-NOTES.md).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "librr/position.h"
#include "machine/vcpu_state.h"
#include "replay/replay_machine.h"

namespace analyzer {

class CheckpointStore;

struct Checkpoint {
  using Page = std::array<uint8_t, 4096>;
  librr::Position position;   // steps is always 0
  double replay_seconds = 0;  // replay work from the start of the recording to here
  uint64_t next_record = 0;   // log record index
  vmm::VcpuState vcpu;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> devices;
  uint64_t clock_ns = 0;
  std::vector<uint8_t> serial_pending;
  std::vector<std::shared_ptr<const Page>> ram;
  std::vector<std::shared_ptr<const Page>> shadow;
  // virtio-blk's copy-on-write overlay (CowDisk::save_overlay: every written
  // run with its data), shared with the previous checkpoint when the guest
  // wrote nothing in between; null without a disk.
  std::shared_ptr<const std::vector<uint8_t>> disk_overlay;
};

class CheckpointStore {
 public:
  CheckpointStore();

  // Captures the replay at its current (settled) position, sharing pages
  // with the latest checkpoint before it.
  void capture(vmm::ReplayMachine& replay, double replay_seconds);
  // Puts the replay back to `checkpoint` (machine, clock, log, session).
  static void restore(const Checkpoint& checkpoint, vmm::ReplayMachine& replay);

  // The last checkpoint at or before `position` (nullptr if none).
  const Checkpoint* at_or_before(const librr::Position& position) const;
  // Drops checkpoints (never the first) until the page memory fits
  // `budget_bytes`, each time the one whose removal leaves the smallest gap
  // in replay time, so the checkpoints stay evenly spread.
  void thin_to(uint64_t budget_bytes);

  size_t size() const { return checkpoints_.size(); }
  // Memory the checkpoints hold: copied pages plus the page tables pointing at them.
  uint64_t bytes() const { return *page_bytes_ + table_bytes_ + *disk_bytes_; }
  const std::vector<std::unique_ptr<Checkpoint>>& all() const { return checkpoints_; }

 private:
  std::shared_ptr<const std::vector<uint8_t>> share_or_copy_disk(vmm::Machine& machine,
                                                                 const Checkpoint* previous);
  std::shared_ptr<const Checkpoint::Page> share_or_copy(
      const uint8_t* page, const std::shared_ptr<const Checkpoint::Page>& previous,
      const std::shared_ptr<const Checkpoint::Page>& alternative);

  std::vector<std::unique_ptr<Checkpoint>> checkpoints_;  // ascending positions
  std::shared_ptr<uint64_t> page_bytes_;                  // live copied pages, in bytes
  std::shared_ptr<uint64_t> disk_bytes_;                  // live disk overlay copies, in bytes
  uint64_t table_bytes_ = 0;                              // the ram/shadow pointer vectors
};

}  // namespace analyzer
