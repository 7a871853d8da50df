// The memory as of the kernel's return to user mode, captured in the first
// run (docs/record-replay.md, "Deltas based on the return to user mode"):
// from a position in kernel code with a device deadline set (a stop may
// follow), the kernel's return instruction is watched with the fourth debug
// register up to the first return to user mode, and again after every
// counted kernel entry; at each such return the recorder copies the pages
// written since the position (a dirty-log read and a few pages, plus the
// vCPU state after an entry, for a rollback there). A stop in user mode then
// has its delta based on that memory, and a rollback to that return puts it
// back, instead of re-running the stretch's emulated kernel code to there
// (~0.4-1.4 ms a stop on these hosts: spin3's record overhead +9-14 % with
// re-runs only).
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

#include "clock/host_clock.h"
#include "librr/error.h"
#include "machine/vcpu_kicker.h"
#include "replay/instruction_stepper.h"
#include "replay/record_session.h"
#include "replay/return_to_user_step.h"

namespace vmm {

// A DEBUG exit on the kernel's return instruction (KernelEntryCounter::
// at_return): a return to user mode that is wanted is captured; then, unless
// a kernel-return stop watches it too (at_kernel_return takes it on), the
// iretq runs as usual (a return to kernel mode, a nested exception's, is
// stepped over, and the next one is still wanted). True if dealt with here.
bool RecordSession::took_return_base() {
  const bool to_user = at_return_to_user(machine_);
  if (to_user && kernel_entries_.capturing_return()) {
    // Replay steps over the return to reach it: where it could not (the
    // code returned to is not mapped yet: a Linux exec), there is no base.
    if (return_to_user_steppable(machine_))
      capture_return_base();
    else
      return_base_.reset();
    kernel_entries_.return_captured();
  }
  if (kernel_entries_.watching_return()) return false;
  if (!to_user) kernel_entries_.step_over_here();
  return true;
}

void RecordSession::capture_return_base() {
  take_dirty_pages();
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  ReturnBase base{SavedPages(machine_.memory(), written_since_position_.listed()), std::nullopt,
                  entries ? entries->count : 0, machine_.vcpu().get_regs().rip};
  // Only a rollback needs the vCPU state (~20 us): after an entry, with the
  // kick due soon enough for the stop to come within kMaxLostUserWorkNs of
  // it (ticks: ~500 system calls, ~20 of them with a stop that close).
  if (base.entries > 0 && policy_.stop_at_kernel_returns &&
      machine_.kicker().armed_at() <= host_monotonic_ns() + kMaxLostUserWorkNs) {
    base.vcpu = machine_.save_vcpu_state();
    base.vcpu->drop_time_stamp_counter();  // host time: restoring it would set the guest's back
  }
  return_base_ = std::move(base);
  ++stats_.return_bases_captured;
}

// The captured return, when it is the one replay reaches from `position`
// before a stop in user mode: the first return after the last counted
// entry (none came after it), with memory as of the position at hand.
const RecordSession::ReturnBase* RecordSession::usable_return_base(
    const librr::Position& position) const {
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  if (!policy_.base_stops_on_return_to_user || !return_base_ || !entries ||
      kernel_entries_.capturing_return() || return_base_->entries != entries->count ||
      !position_memory_complete_ || position_memory_at_ != position)
    return nullptr;
  return &*return_base_;
}

std::span<const uint8_t> RecordSession::guest_page(uint64_t gfn) const {
  const uint8_t* page =
      machine_.memory().translate(gfn * MemoryShadow::kPageSize, MemoryShadow::kPageSize);
  if (!page)
    throw librr::Error(fmt::format(
        "record: page {:#x}, written after the previous position, lies outside guest memory", gfn));
  return {page, MemoryShadow::kPageSize};
}

// The delta of a stop in user mode: the pages written since the position
// that differ now from the captured return (a page written only after the
// return held there what it held at the position).
librr::MemoryDelta RecordSession::delta_from_return_base(const ReturnBase& base,
                                                         uint64_t landmark) {
  take_dirty_pages();
  return return_to_user_delta(landmark, base.return_rip, written_since_position_.listed(),
                              base.pages, GuestMemoryNow::at_stop);
}

librr::MemoryDelta RecordSession::return_to_user_delta(uint64_t landmark, uint64_t return_rip,
                                                       const std::vector<uint64_t>& gfns,
                                                       const SavedPages& saved,
                                                       GuestMemoryNow now) const {
  std::vector<librr::PageChange> changes;
  for (const uint64_t gfn : gfns) {
    std::span<const uint8_t> then = saved.page(gfn);
    if (then.empty()) then = position_memory_.page(gfn);
    const std::span<const uint8_t> guest = guest_page(gfn);
    if (std::ranges::equal(then, guest)) continue;
    if (now == GuestMemoryNow::at_stop)
      changes.push_back({gfn, then, guest});
    else
      changes.push_back({gfn, guest, then});
  }
  librr::MemoryDelta delta = librr::make_memory_delta(
      landmark, changes, librr::UnchangedPages::kOmit, librr::DeltaBase::return_to_user);
  delta.return_rip = return_rip;
  return delta;
}

// rolled_back_to_kernel_return from the captured return: memory and the
// vCPU state put back as they were there (pages written only after it as at
// the position), then the guest steps over the iretq as replay does. The
// user code run since is lost, as with a re-run; nothing outside the guest
// saw it (the stretch made no exit).
std::optional<uint64_t> RecordSession::rolled_back_to_return_base() {
  const ReturnBase& base = *return_base_;
  if (base.entries == 0) return std::nullopt;
  machine_.settle_vcpu();
  if (current_cpl(machine_) != 3) return std::nullopt;
  ++stats_.kernel_return_rollbacks_tried;
  take_dirty_pages();
  std::vector<uint64_t> after_the_return;
  for (const uint64_t gfn : written_since_position_.listed())
    if (base.pages.page(gfn).empty()) after_the_return.push_back(gfn);
  position_memory_.restore_guest(after_the_return);
  base.pages.restore_guest();
  machine_.restore_vcpu_state(*base.vcpu);
  if (!step_return_to_user(machine_))
    throw librr::Error(fmt::format(
        "record: the kernel's return to user mode at {:#x}, which the guest stood on earlier in "
        "this stretch, could not be stepped over after a rollback there",
        base.return_rip));
  machine_.settle_vcpu();  // IF and the interrupt shadow after the return
  ++stats_.kernel_return_rollbacks;
  ++stats_.kernel_return_stops;
  return base.return_rip;
}

}  // namespace vmm
