// RecordSession::delta_from_return_to_user: the memory delta of a stop in
// user mode, based on guest memory right after the kernel's first return to
// user mode after the previous position (DeltaBase::return_to_user, log
// format 2.13; docs/record-replay.md, "Deltas based on the return to user mode").
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>
#include <vector>

#include "replay/kernel_return_stop.h"
#include "replay/record_session.h"
#include "replay/saved_pages.h"
#include "replay/searched_position.h"

namespace vmm {
namespace {

// The re-run covers the kernel's code from the position to its return (a
// timer handler's tail: well under a millisecond even where the host
// emulates kernel code); it gives up after twice the first run's stretch,
// and at most this long, should the return come later or another way.
constexpr uint64_t kMaxRerunNs = 100'000'000;
constexpr uint64_t kMinRerunNs = 2'000'000;

}  // namespace

// A stop in user mode about to be installed whose stretch made no counted
// kernel entry: the stretch is the kernel's code after the previous
// position (an interrupt handler's tail, the scheduler), its return to user
// mode, then user code up to the stop. A delta against memory at the
// position lists every page the kernel wrote too (spin3: its stack and task
// table, ~45 of the ~75 bytes each stop cost), though replay can re-execute
// the kernel's part exactly: so the recorder rolls the guest back to where
// it resumed from the position (as searched_by_rerun does), runs it to the
// first return to user mode through the kernel's iretq, exactly as replay
// will (run_to_kernel_return, no entries), and logs only the pages that
// differ there from the stop, XORed against that memory. The guest is then
// put back exactly as the first run left it. Nothing outside the guest saw
// either run: the stretch made no exit. If the return is not reached within
// the bound (another way back to user mode, a landmark), nullopt.
std::optional<librr::MemoryDelta> RecordSession::delta_from_return_to_user(const VcpuState& stop,
                                                                           uint64_t landmark) {
  const std::optional<uint64_t> return_rip = kernel_entries_.return_rip();
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  if (!policy_.base_stops_on_return_to_user || !resume_state_ || !return_rip || !entries ||
      entries->count != 0 || (stop.sregs.cs.selector & 3) != 3 || !position_memory_complete_ ||
      position_memory_at_ != previous_position_of(timeline_.position()))
    return std::nullopt;
  take_dirty_pages();
  const std::vector<uint64_t> written = written_since_position_.listed();
  ++stats_.return_to_user_reruns;
  const SavedPages stop_pages(machine_.memory(), written);

  position_memory_.restore_guest(written);
  machine_.restore_vcpu_state(*resume_state_);
  PagesWrittenSincePosition rerun_written(machine_);
  rerun_written.restart();
  // An interrupt window asked for earlier would end every entry at once.
  auto& window = machine_.run_state().request_interrupt_window;
  const auto window_before = std::exchange(window, 0);
  const uint64_t stretch_ns = host_monotonic_ns() - stretch_started_host_ns_;
  const KernelReturnSearch result = run_to_kernel_return(
      machine_, *entries, *return_rip, std::clamp(2 * stretch_ns, kMinRerunNs, kMaxRerunNs),
      /*no_more_entries=*/true);
  window = window_before;
  const std::vector<uint64_t> rerun_pages = rerun_written.gfns();

  std::optional<librr::MemoryDelta> delta;
  if (result == KernelReturnSearch::kReached) {
    // Memory at the stop: the first run's pages, else as at the position.
    const std::span<const uint8_t> position_memory = position_memory_.bytes();
    std::vector<uint64_t> candidates;
    std::set_union(written.begin(), written.end(), rerun_pages.begin(), rerun_pages.end(),
                   std::back_inserter(candidates));
    std::vector<std::vector<uint8_t>> bases;  // memory after the return, kept alive for changes
    bases.reserve(candidates.size());
    std::vector<librr::PageChange> changes;
    for (const uint64_t gfn : candidates) {
      std::span<const uint8_t> at_stop = stop_pages.page(gfn);
      if (at_stop.empty())
        at_stop = position_memory.subspan(gfn * MemoryShadow::kPageSize, MemoryShadow::kPageSize);
      const uint8_t* now =
          machine_.memory().translate(gfn * MemoryShadow::kPageSize, MemoryShadow::kPageSize);
      if (!now)
        throw librr::Error(fmt::format(
            "record: page {:#x}, written after the previous position, lies outside guest memory",
            gfn));
      if (std::memcmp(now, at_stop.data(), MemoryShadow::kPageSize) == 0) continue;
      bases.emplace_back(now, now + MemoryShadow::kPageSize);
      changes.push_back({gfn, bases.back(), at_stop});
    }
    delta = librr::make_memory_delta(landmark, changes, librr::UnchangedPages::kOmit,
                                     librr::DeltaBase::return_to_user);
    delta->return_rip = *return_rip;
    ++stats_.return_to_user_deltas;
  }
  put_back_first_run(result == KernelReturnSearch::kLandmark, stop, stop_pages, rerun_pages);
  if (delta) {
    shadow_.refresh(*delta);  // replay's shadow takes the listed pages as well
    position_memory_.refresh(written_since_position_.take());
  }
  return delta;
}

}  // namespace vmm

namespace vmm {

// A stop in user mode about to be installed whose stretch made counted
// kernel entries (a system call, a page fault) before the kick, none of
// them with an interrupt overdue (which would have made a kernel-return stop
// at its return): the guest is rolled back to the position and re-run to
// the kernel's return to user mode after the last of those entries, exactly
// as replay finds a kernel-return stop (run_to_kernel_return), and the stop
// is made there instead: a kernel-return stop, ~11 bytes, instead of the
// vCPU state and a delta that lists what the kernel and the user code wrote
// since the position (spin3's first stop in each task: ~150 bytes). The user
// code the first run executed after that return is lost, at most the
// stretch since the last entry's return (a tick and the lateness bound); the
// next stretch starts after that return, so progress is kept: every such
// rollback keeps at least one kernel entry's work. The return address, or
// nullopt with the guest put back as the first run left it.
std::optional<uint64_t> RecordSession::rolled_back_to_kernel_return() {
  const std::optional<uint64_t> return_rip = kernel_entries_.return_rip();
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  if (!policy_.base_stops_on_return_to_user || !policy_.stop_at_kernel_returns || !resume_state_ ||
      !return_rip || !entries || entries->count == 0 || !position_memory_complete_ ||
      position_memory_at_ != timeline_.position())
    return std::nullopt;
  machine_.settle_vcpu();
  VcpuState stop = machine_.save_vcpu_state();
  if ((stop.sregs.cs.selector & 3) != 3) return std::nullopt;
  stop.drop_time_stamp_counter();
  take_dirty_pages();
  const std::vector<uint64_t> written = written_since_position_.listed();
  ++stats_.kernel_return_rollbacks_tried;
  const SavedPages stop_pages(machine_.memory(), written);

  position_memory_.restore_guest(written);
  machine_.restore_vcpu_state(*resume_state_);
  auto& window = machine_.run_state().request_interrupt_window;
  const auto window_before = std::exchange(window, 0);
  const uint64_t stretch_ns = host_monotonic_ns() - stretch_started_host_ns_;
  const KernelReturnSearch result = run_to_kernel_return(
      machine_, *entries, *return_rip, std::clamp(2 * stretch_ns, kMinRerunNs, kMaxRerunNs),
      /*no_more_entries=*/true);
  window = window_before;
  // The second run's pages go to the recorder's own tracking as the first
  // run's did: the stop is made in it.
  const std::vector<uint64_t> bitmap = machine_.take_dirty_log();
  merge_written(bitmap);
  if (result == KernelReturnSearch::kReached) {
    machine_.settle_vcpu();  // IF and the interrupt shadow after the return
    ++stats_.kernel_return_rollbacks;
    ++stats_.kernel_return_stops;
    return return_rip;
  }
  DirtyPages rerun(machine_.memory().size() / MemoryShadow::kPageSize);
  rerun.merge(bitmap);
  put_back_first_run(result == KernelReturnSearch::kLandmark, stop, stop_pages, rerun.take());
  return std::nullopt;
}

}  // namespace vmm
