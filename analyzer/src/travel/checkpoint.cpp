#include "travel/checkpoint.h"

#include <algorithm>
#include <cstring>

namespace analyzer {
namespace {

constexpr uint64_t kPageSize = 4096;

// One shared all-zero page: zero pages of RAM and shadow cost nothing.
const std::shared_ptr<const Checkpoint::Page>& zero_page() {
  static const auto page = std::make_shared<const Checkpoint::Page>();
  return page;
}

bool same_page(const uint8_t* page, const std::shared_ptr<const Checkpoint::Page>& stored) {
  return stored && std::memcmp(page, stored->data(), kPageSize) == 0;
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> save_devices(vmm::Machine& machine) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> blobs;
  for (const vmm::Device* device : machine.devices()) {
    librr::ByteWriter out;
    device->save(out);
    blobs.emplace_back(std::string(device->name()), out.data());
  }
  return blobs;
}

// Writes the stored pages back, leaving pages that are zero in both places
// untouched (an untouched page of guest RAM then stays unallocated).
void restore_pages(const std::vector<std::shared_ptr<const Checkpoint::Page>>& pages,
                   uint8_t* memory) {
  for (size_t i = 0; i < pages.size(); ++i) {
    uint8_t* target = memory + i * kPageSize;
    if (pages[i] == zero_page() && same_page(target, zero_page())) continue;
    std::memcpy(target, pages[i]->data(), kPageSize);
  }
}

}  // namespace

CheckpointStore::CheckpointStore()
    : page_bytes_(std::make_shared<uint64_t>(0)), disk_bytes_(std::make_shared<uint64_t>(0)) {}

std::shared_ptr<const std::vector<uint8_t>> CheckpointStore::share_or_copy_disk(
    vmm::Machine& machine, const Checkpoint* previous) {
  if (!machine.blk()) return nullptr;
  librr::ByteWriter out;
  machine.blk()->disk().save_overlay(out);
  if (previous && previous->disk_overlay && *previous->disk_overlay == out.data())
    return previous->disk_overlay;
  auto* copy = new std::vector<uint8_t>(out.data());
  *disk_bytes_ += copy->size();
  return std::shared_ptr<const std::vector<uint8_t>>(copy, [bytes = disk_bytes_](const auto* p) {
    *bytes -= p->size();
    delete p;
  });
}

std::shared_ptr<const Checkpoint::Page> CheckpointStore::share_or_copy(
    const uint8_t* page, const std::shared_ptr<const Checkpoint::Page>& previous,
    const std::shared_ptr<const Checkpoint::Page>& alternative) {
  if (same_page(page, previous)) return previous;
  if (same_page(page, alternative)) return alternative;
  if (same_page(page, zero_page())) return zero_page();
  auto* copy = new Checkpoint::Page;
  std::memcpy(copy->data(), page, kPageSize);
  *page_bytes_ += kPageSize;
  // The counter outlives the store if a page does (it never should).
  return std::shared_ptr<const Checkpoint::Page>(copy, [bytes = page_bytes_](const auto* p) {
    *bytes -= kPageSize;
    delete p;
  });
}

void CheckpointStore::capture(vmm::ReplayMachine& replay, double replay_seconds) {
  vmm::Machine& machine = replay.machine();
  machine.settle_vcpu();
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->position = replay.timeline().position();
  checkpoint->replay_seconds = replay_seconds;
  checkpoint->next_record = replay.next_record_index();
  checkpoint->vcpu = machine.save_vcpu_state();
  checkpoint->devices = save_devices(machine);
  checkpoint->clock_ns = replay.clock().now_ns();
  checkpoint->serial_pending = replay.serial_input().pending();

  const Checkpoint* previous = at_or_before(checkpoint->position);
  checkpoint->disk_overlay = share_or_copy_disk(machine, previous);
  const uint8_t* ram = machine.memory().host_base();
  const uint8_t* shadow = replay.session().shadow_bytes().data();
  const size_t pages = machine.memory().size() / kPageSize;
  static const std::shared_ptr<const Checkpoint::Page> kNone;
  checkpoint->ram.resize(pages);
  checkpoint->shadow.resize(pages);
  for (size_t i = 0; i < pages; ++i) {
    const size_t offset = i * kPageSize;
    checkpoint->ram[i] = share_or_copy(ram + offset, previous ? previous->ram[i] : kNone, kNone);
    checkpoint->shadow[i] =
        share_or_copy(shadow + offset, checkpoint->ram[i], previous ? previous->shadow[i] : kNone);
  }
  auto where = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), checkpoint->position,
                                [](const librr::Position& p, const std::unique_ptr<Checkpoint>& c) {
                                  return p < c->position;
                                });
  table_bytes_ += 2 * pages * sizeof(std::shared_ptr<const Checkpoint::Page>);
  checkpoints_.insert(where, std::move(checkpoint));
}

void CheckpointStore::restore(const Checkpoint& checkpoint, vmm::ReplayMachine& replay) {
  vmm::Machine& machine = replay.machine();
  // Finish the PIO/MMIO read the vCPU may be in the middle of now: otherwise
  // KVM would complete it into the restored registers at the next KVM_RUN.
  machine.settle_vcpu();
  restore_pages(checkpoint.ram, machine.memory().host_base());
  // KVM would otherwise keep using translations (and dirty bits) of the
  // page tables as they were before the restore.
  machine.forget_guest_mappings();
  restore_pages(checkpoint.shadow, replay.session().shadow_bytes().data());
  const std::vector<vmm::Device*> devices = machine.devices();
  for (size_t i = 0; i < devices.size(); ++i) {
    librr::ByteReader in(checkpoint.devices.at(i).second, checkpoint.devices[i].first);
    devices[i]->load(in);
    in.expect_end();
  }
  if (checkpoint.disk_overlay && machine.blk()) {
    // Sectors written after the checkpoint read from the base image again.
    librr::ByteReader in(*checkpoint.disk_overlay, "checkpoint disk overlay");
    machine.blk()->disk().load_overlay(in);
    in.expect_end();
  }
  replay.clock().resume_at(checkpoint.clock_ns);
  machine.restore_vcpu_state(checkpoint.vcpu);
  machine.settle_vcpu();  // kvm_run's IF and interrupt-window flags from the restored state
  replay.serial_input().pending() = checkpoint.serial_pending;
  replay.timeline().reset(checkpoint.position);
  replay.reposition_log(checkpoint.next_record);
  replay.session().resume_after_restore();
}

const Checkpoint* CheckpointStore::at_or_before(const librr::Position& position) const {
  const Checkpoint* best = nullptr;
  for (const auto& checkpoint : checkpoints_) {
    if (checkpoint->position > position) break;
    best = checkpoint.get();
  }
  return best;
}

void CheckpointStore::thin_to(uint64_t budget_bytes) {
  while (bytes() > budget_bytes && checkpoints_.size() > 1) {
    size_t victim = checkpoints_.size() - 1;
    double smallest_gap = -1;
    for (size_t i = 1; i + 1 < checkpoints_.size(); ++i) {
      const double gap = checkpoints_[i + 1]->replay_seconds - checkpoints_[i - 1]->replay_seconds;
      if (smallest_gap < 0 || gap < smallest_gap) {
        smallest_gap = gap;
        victim = i;
      }
    }
    table_bytes_ -=
        2 * checkpoints_[victim]->ram.size() * sizeof(std::shared_ptr<const Checkpoint::Page>);
    checkpoints_.erase(checkpoints_.begin() + static_cast<std::ptrdiff_t>(victim));
  }
}

}  // namespace analyzer
