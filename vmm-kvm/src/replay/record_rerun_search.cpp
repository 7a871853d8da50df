// RecordSession::searched_by_rerun: the recorder runs replay's search itself
// for a stop it would otherwise install (docs/record-replay.md, "Stops
// searched at record").
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "clock/host_clock.h"
#include "replay/hardware_breakpoints.h"
#include "replay/record_session.h"
#include "replay/saved_pages.h"
#include "replay/searched_position.h"

namespace vmm {
namespace {

// Bounds of the recorder's own search: replay pays the same again, so only
// stops found quickly are worth it. A Linux boot's loops that outlast the
// return-site watches run 8-25 ms of emulated kernel code before the stop.
// The time bound decides (a hit costs ~40-50 us): ticks' interrupts-off boot
// spin has its two stops ~1,000-1,900 and ~2,900-5,400 passes in, one hit
// each (2026-11-27, under load); with 2,000 hits at most, the second was
// always installed and the first in one recording of three, five of five in
// a loaded CI run.
constexpr SearchBounds kRerunSearchBounds{/*max_hits=*/8'000, /*time_limit_ns=*/250'000'000};

}  // namespace

// At a stop in kernel code about to be logged that cut a rep-string copy or
// fill mid-way (Linux unpacking its initramfs, poisoning freed pages): no
// search can stop there (a breakpoint fires once per instruction, not per
// iteration), so the guest first single-steps to the end of that
// instruction (the host runs it in a few chunks) or to wherever a fault in
// it leads, where searched_by_rerun may take the stop. With the larger
// bound in emulated kernel code, such stops were half of a Linux boot's
// installed ones (25 of 43, ~1 KB each).
void RecordSession::step_past_rep_string() {
  constexpr int kMaxSteps = 4096;
  if (!policy_.search_by_rerun || !resume_state_ || !kernel_only_search_allowed() ||
      !in_64_bit_kernel_mode(machine_.vcpu().get_sregs_for_mode()) ||
      !at_rep_string_instruction(machine_) || at_port_or_halt_instruction(machine_))
    return;
  const uint64_t rip = machine_.vcpu().get_regs().rip;
  const ArmedHardwareBreakpoints stepping(machine_, {}, /*single_step=*/true);
  for (int step = 0; step < kMaxSteps; ++step) {
    const Machine::Exit exit = enter_until_stopped(machine_);
    if (!is_debug_exit(machine_, exit))
      throw librr::Error(fmt::format(
          "record: stepping past the rep-string instruction at RIP {:#x} ended in exit reason "
          "{} at {} instead of a single step",
          rip, machine_.run_state().exit_reason, machine_.describe_rip()));
    if (machine_.vcpu().get_regs().rip != rip) return;
  }
}

// A stop in kernel code about to be installed, `stop` its vCPU state: roll
// the guest back to where it resumed from the previous position (as
// roll_back_to_position does) and run the stretch again with replay's own
// search for this stop, with the pages implied (log format 2.12). The
// stretch made no exit and stayed in kernel mode, so nothing outside the
// guest saw the first run, and the second is what replay will do: if it
// ends at the stop's registers and its pages byte for byte, the stop is
// logged as a searched stop. Else the guest is put back exactly as the
// first run left it, and the stop is installed. The search a stop needs
// that is not at a return site is unbounded in theory (a loop's every pass
// hits it), which is why searched_memory() does not take it on an estimate.
std::optional<librr::SearchedStop> RecordSession::searched_by_rerun(const VcpuState& stop) {
  if (!policy_.search_by_rerun || !resume_state_ || rolled_back_here_ ||
      !kernel_only_search_allowed() || !position_memory_complete_ ||
      position_memory_at_ != previous_position_of(timeline_.position()) ||
      (stop.sregs.cs.selector & 3) != 0 || !stop_searchable(machine_, stop))
    return std::nullopt;
  take_dirty_pages();
  const std::vector<uint64_t> written = written_since_position_.listed();
  if (written.size() > policy_.max_searched_pages) return std::nullopt;
  ++stats_.rerun_searches;
  librr::SearchedStop searched{stop.regs.rip, 0, {}};
  searched.hash_bits = 32;
  searched.one_hash = true;
  searched.pages_implied = true;
  searched.pages.xxh3 = hash_guest_pages(machine_, written, &stop.regs) & searched.hash_mask();
  const SavedPages stop_pages(machine_.memory(), written);

  const RerunFromPosition rerun(*this, written);
  PagesWrittenSincePosition rerun_written(machine_);
  rerun_written.restart();
  uint64_t hits = 0;
  const SearchTarget target = SearchTarget::of(searched);
  const SearchResult result =
      run_to_searched_stop(machine_, target, hits, &rerun_written, kRerunSearchBounds);
  const std::vector<uint64_t> rerun_pages = rerun_written.gfns();
  const kvm_regs registers = machine_.vcpu().get_regs();
  if (result == SearchResult::kFound && rerun_pages == written &&
      std::memcmp(&registers, &stop.regs, sizeof registers) == 0 && stop_pages.equal_to_guest()) {
    ++stats_.rerun_searched_stops;
    return searched;
  }
  put_back_first_run(result == SearchResult::kLandmark, stop, stop_pages, rerun_pages);
  return std::nullopt;
}

// The guest rolled back to where it resumed from the position (the saved
// vCPU state; `written`, the pages written since, from the second shadow)
// for a re-run (no interrupt window is asked for outside the main loop's run).
RecordSession::RerunFromPosition::RerunFromPosition(RecordSession& session,
                                                    const std::vector<uint64_t>& written)
    : rerun_ns_(session.stats_.rerun_ns), started_ns_(host_monotonic_ns()) {
  session.position_memory_.restore_guest(written);
  session.machine_.restore_vcpu_state(*session.resume_state_);
}

RecordSession::RerunFromPosition::~RerunFromPosition() {
  rerun_ns_ += host_monotonic_ns() - started_ns_;
}

// After a re-run of the stretch since the previous position, which wrote
// `rerun_pages`: the guest as the first run left it at `stop`. A landmark's
// port or MMIO access the re-run ended at is completed first (its read would
// land in the registers put back); pages only the re-run wrote get their
// content as of the position, which the first run left; the vCPU's IF and
// interrupt shadow are read again (the re-run's last exit left its own).
void RecordSession::put_back_first_run(bool rerun_at_landmark, const VcpuState& stop,
                                       const SavedPages& stop_pages,
                                       const std::vector<uint64_t>& rerun_pages) {
  if (rerun_at_landmark) machine_.settle_vcpu();
  std::vector<uint64_t> second_run_only;
  for (const uint64_t gfn : rerun_pages)
    if (stop_pages.page(gfn).empty()) second_run_only.push_back(gfn);
  position_memory_.restore_guest(second_run_only);
  stop_pages.restore_guest();
  machine_.restore_vcpu_state(stop);
  machine_.settle_vcpu();
}

}  // namespace vmm
