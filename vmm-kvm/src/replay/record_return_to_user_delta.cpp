// Stops in user mode that the recorder re-runs to the kernel's return to
// user mode (docs/record-replay.md, "Deltas based on the return to user
// mode"): RecordSession::delta_from_return_to_user (the memory delta of an
// installed stop, based there: DeltaBase::return_to_user, log format 2.13)
// and RecordSession::rolled_back_to_kernel_return (the stop moved back to
// that return, a kernel-return stop); both from the memory captured at that
// return in the first run where there is one (record_return_base.cpp).
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
// emulates kernel code), or the stretch up to the last counted entry's
// return; it gives up after twice the first run's stretch, and at most this
// long, should the return come later or another way.
constexpr uint64_t kMaxRerunNs = 100'000'000;
constexpr uint64_t kMinRerunNs = 2'000'000;

std::vector<uint64_t> gfns_of(const std::vector<uint64_t>& dirty_bitmap, uint64_t memory_bytes) {
  DirtyPages pages(memory_bytes / MemoryShadow::kPageSize);
  pages.merge(dirty_bitmap);
  return pages.take();
}

}  // namespace

// The entries counted since the position and the kernel's return
// instruction, when the stop the guest stands at, in user mode, may be
// re-run to that return from `position` (where the guest resumed, in
// kernel mode, with the second shadow holding memory as of then).
std::optional<std::pair<librr::CodeArrivals, uint64_t>> RecordSession::rerunnable_to_kernel_return(
    const librr::Position& position) const {
  const std::optional<uint64_t> return_rip = kernel_entries_.return_rip();
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  if (!policy_.base_stops_on_return_to_user || !resume_state_ || !return_rip || !entries ||
      !position_memory_complete_ || position_memory_at_ != position)
    return std::nullopt;
  return std::pair(*entries, *return_rip);
}

// Rolls the guest back to where it resumed from the position (the saved
// vCPU state; the pages written since from the second shadow, their
// contents at the stop kept) and runs it to the kernel's return to user
// mode after `entries`, exactly as replay finds a kernel-return stop
// (run_to_kernel_return), giving up at one more entry. The stretch made no
// exit, so nothing outside the guest saw the first run.
RecordSession::KernelReturnRerun RecordSession::rerun_to_kernel_return(
    const librr::CodeArrivals& entries, uint64_t return_rip) {
  take_dirty_pages();
  std::vector<uint64_t> written = written_since_position_.listed();
  SavedPages stop_pages(machine_.memory(), written);
  const uint64_t stretch_ns = host_monotonic_ns() - stretch_started_host_ns_;
  KernelReturnSearch result;
  {
    const RerunFromPosition rerun(*this, written);
    result = run_to_kernel_return(machine_, entries, return_rip,
                                  std::clamp(2 * stretch_ns, kMinRerunNs, kMaxRerunNs),
                                  /*no_more_entries=*/true);
  }
  return {result, std::move(written), std::move(stop_pages), machine_.take_dirty_log()};
}

// A stop in user mode about to be installed: the stretch is the kernel's
// code after the previous position (an interrupt handler's tail, the
// scheduler), its return to user mode, maybe user code and counted kernel
// entries (system calls, page faults) and their returns, then user code up
// to the stop. A delta against memory at the position lists every page the
// kernel wrote too (spin3: its stack and task table, ~45 of the ~75 bytes
// each stop cost), though replay can re-execute the stretch exactly up to
// the kernel's return to user mode after its last counted entry (or the
// first return, with none): so the delta lists only the pages that differ
// there from the stop, XORed against that memory. The recorder captured
// that memory at the return in the first run (delta_from_return_base), or,
// where it could not, re-runs the stretch to there (delta_by_rerun_to_return).
// nullopt when neither has it.
std::optional<librr::MemoryDelta> RecordSession::delta_from_return_to_user(const VcpuState& stop,
                                                                           uint64_t landmark) {
  if ((stop.sregs.cs.selector & 3) != 3) return std::nullopt;
  std::optional<librr::MemoryDelta> delta;
  if (const ReturnBase* base = usable_return_base(previous_position_of(timeline_.position())))
    delta = delta_from_return_base(*base, landmark);
  else
    delta = delta_by_rerun_to_return(stop, landmark);
  if (delta) {
    ++stats_.return_to_user_deltas;
    shadow_.refresh(*delta);  // replay's shadow takes the listed pages as well
    position_memory_.refresh(written_since_position_.take());
  }
  return delta;
}

// The re-run to the return: the first run is put back as it left it
// afterwards. The re-run gives up at one more kernel entry before that
// return: the stop, which counted no more, came first, and the pages the
// kernel wrote after it would be listed for nothing. If the return is not
// reached, nullopt.
std::optional<librr::MemoryDelta> RecordSession::delta_by_rerun_to_return(const VcpuState& stop,
                                                                          uint64_t landmark) {
  const auto rerunnable = rerunnable_to_kernel_return(previous_position_of(timeline_.position()));
  if (!rerunnable) return std::nullopt;
  const auto& [entries, return_rip] = *rerunnable;
  ++stats_.return_to_user_reruns;
  const KernelReturnRerun rerun = rerun_to_kernel_return(entries, return_rip);
  const std::vector<uint64_t>& written = rerun.written;
  const SavedPages& stop_pages = rerun.stop_pages;
  const std::vector<uint64_t> rerun_pages = gfns_of(rerun.dirty_log, machine_.memory().size());

  std::optional<librr::MemoryDelta> delta;
  if (rerun.result == KernelReturnSearch::kReached) {
    // Memory at the stop: the first run's pages, else as at the position.
    std::vector<uint64_t> candidates;
    std::set_union(written.begin(), written.end(), rerun_pages.begin(), rerun_pages.end(),
                   std::back_inserter(candidates));
    delta = return_to_user_delta(landmark, return_rip, candidates, stop_pages,
                                 GuestMemoryNow::at_return);
  }
  put_back_first_run(rerun.result == KernelReturnSearch::kLandmark, stop, stop_pages, rerun_pages);
  return delta;
}

// A stop in user mode about to be installed whose stretch made counted
// kernel entries (a system call, a page fault) before the kick, none of
// them with an interrupt overdue (which would have made a kernel-return stop
// at its return): the guest is re-run to the kernel's return to user mode
// after the last of those entries, and the stop is made there instead: a
// kernel-return stop, ~11 bytes, instead of the vCPU state and a delta that
// lists what the kernel and the user code wrote since the position (spin3's
// first stop in each task: ~150 bytes). The user code the first run
// executed after that return is lost, so only when the last entry came at
// most kMaxLostUserWorkNs before the stop: rolling spin3's first stops back
// (their system calls come at the start of their stretches) cost ~10 ms of
// its computation each, its record 0.52 -> 0.57 s for ~500 bytes less. The
// next stretch starts after that return, so progress is kept: every such
// rollback keeps at least one kernel entry's work. The return address, or
// nullopt with the guest put back as the first run left it.
std::optional<uint64_t> RecordSession::rolled_back_to_kernel_return() {
  if (!policy_.stop_at_kernel_returns ||
      host_monotonic_ns() - kernel_entries_.last_arrival_host_ns() > kMaxLostUserWorkNs)
    return std::nullopt;
  if (const ReturnBase* base = usable_return_base(timeline_.position()); base && base->vcpu)
    return rolled_back_to_return_base();
  const auto rerunnable = rerunnable_to_kernel_return(timeline_.position());
  if (!rerunnable || rerunnable->first.count == 0) return std::nullopt;
  const auto& [entries, return_rip] = *rerunnable;
  machine_.settle_vcpu();
  VcpuState stop = machine_.save_vcpu_state();
  if ((stop.sregs.cs.selector & 3) != 3) return std::nullopt;
  stop.drop_time_stamp_counter();
  ++stats_.kernel_return_rollbacks_tried;
  const KernelReturnRerun rerun = rerun_to_kernel_return(entries, return_rip);
  if (rerun.result == KernelReturnSearch::kReached) {
    // The stop is made in the second run: its pages are tracked as the first run's were.
    merge_written(rerun.dirty_log);
    machine_.settle_vcpu();  // IF and the interrupt shadow after the return
    ++stats_.kernel_return_rollbacks;
    ++stats_.kernel_return_stops;
    return return_rip;
  }
  put_back_first_run(rerun.result == KernelReturnSearch::kLandmark, stop, rerun.stop_pages,
                     gfns_of(rerun.dirty_log, machine_.memory().size()));
  return std::nullopt;
}

}  // namespace vmm
