#pragma once
// Drives a Machine while logging every nondeterministic input (docs/record-replay.md).
// The loop mirrors ReplaySession's step for step: each point where record
// consults the outside world has one twin in replay that reads the log.
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "clock/virtual_clock.h"
#include "librr/recorder.h"
#include "machine/machine.h"
#include "replay/kernel_entry_counter.h"
#include "replay/kernel_return_stop.h"
#include "replay/memory_shadow.h"
#include "replay/replay_rules.h"
#include "replay/saved_pages.h"
#include "replay/session_common.h"

namespace vmm {

// What record logs and when (docs/record-replay.md, "Recording policy").
struct RecordPolicy {
  // At a synchronous exit, a clock sample is logged only when the guest can
  // see time there: the exit accesses a timed device (PIT, RTC) and guest time
  // lags host time by this much, or a device deadline has passed in host time
  // (so its interrupt is raised at this landmark instead of a later stop).
  uint64_t clock_granularity_ns = 1'000'000;
  // A due timer interrupt is at most this late (counted from the deadline or
  // from the guest's last resume, whichever is later) before the vCPU is
  // stopped to deliver it: the coalescing bound for CPU-bound stretches.
  uint64_t max_interrupt_lateness_ns = 4'000'000;
  // The bound instead while the guest runs kernel code that this host
  // emulates (the probe; ~1 M instructions/s on kvm_pvm, a thousand times
  // slower than native): there a tick's worth of host time is little guest
  // work, and each tick delivered is a position. 0: the bound above
  // everywhere (kernel code runs natively).
  uint64_t emulated_kernel_lateness_ns = 0;
  // A pending interrupt the guest cannot take (IF=0) is retried this often
  // (such stops are not logged unless input arrived: see stop_can_stay_unlogged).
  uint64_t retry_quantum_ns = 2'000'000;
  // Guest time between state digests (plus one at the end). Guest rather
  // than host time: an idle guest's digests would otherwise be a third of
  // its log, and a digest hashes all of guest RAM.
  uint64_t digest_interval_ns = 10'000'000'000;
  // What the state digests hash (the manifest must name the same rules).
  ReplayRules rules = ReplayRules::current();
  // At every landmark record copies the pages written since the previous one
  // into a second shadow, so that each asynchronous position's memory delta is
  // based on the memory replay holds at the landmark before it
  // (DeltaBase::previous_position: only the skipped stretch's writes, not the
  // interrupt handler's, nor every page written since the shadow's reset).
  // Each copy reads KVM's dirty log (and re-arms its write faults): ~20 us
  // per landmark here (hello, 489 landmarks: 55 -> 65 ms). This bounds it to
  // so many landmarks after the start and after each asynchronous position
  // (a later stop is then based on the shadow); kEveryLandmark does not.
  // Until 2026-11-26 it was 8, because 4 of 10 Linux boots recorded with
  // every landmark diverged: the guest kernel read the TSC in an interrupt
  // handler (docs/linux-guest.md, patch 0001), which the shadow-based deltas
  // of the bounded form happened to paper over.
  static constexpr uint32_t kEveryLandmark = UINT32_MAX;
  uint32_t tracked_landmarks_after_stop = kEveryLandmark;
  // Count kernel entries for stops in user mode (kernel_entry_counter.h);
  // `rr-vmm record` sets it where kernel_entry_counting_useful().
  bool count_kernel_entries = false;
  // With count_kernel_entries: while an interrupt is due, stop at the
  // kernel's next return to user mode after a counted entry and deliver it
  // there, logged as a kernel-return stop (kernel_return_stop.h: a hash of
  // the registers instead of the vCPU state and a memory delta).
  bool stop_at_kernel_returns = true;
  // Log stops in kernel mode as searched positions (searched_position.h):
  // the rip, a hash of the registers and a digest of the pages written since
  // the previous position, found again at replay by a hardware-breakpoint
  // search instead of installed with a memory delta. `rr-vmm record` sets
  // the CPL0 instruction rate kernel_stop_search_rate() measured; 0 turns it
  // off. Only when the stretch since the previous position is short enough
  // for a bounded search at that rate (stretch_searchable), at most
  // `max_searched_pages` pages were written since the previous position, and
  // only when the guest provably stayed in kernel mode since the previous
  // stop (that stop and every landmark since in kernel mode, no kernel entry
  // counted: so count_kernel_entries too): code this host runs natively at
  // CPL3 reads the host's own CPUID (glibc stores it), which differs between
  // host cores.
  double searched_cpl0_instructions_per_second = 0;
  // With searched stops: a stop in kernel code with an interrupt due is moved
  // to a return site (return_site_stop.h: of the next call, else of the
  // running function) and searched there, where replay's search hits once
  // per call instead of once per pass of a loop. A watch lasts until the
  // next kick (the lateness bound), then another site is watched from where
  // the guest is (kReturnSiteWatchesPerStop in all); then the stop is made
  // where the guest is.
  bool stop_at_return_sites = true;
  // With searched stops: a stop in kernel code that no return site took,
  // whose stretch wrote at most kRollbackMaxWrittenPages pages (a loop that
  // waits for the interrupt; kKernelEntryPages more when the stretch entered
  // the kernel from user mode), is rolled back to where the guest resumed
  // from the previous position (its vCPU state, captured at landmarks and
  // logged stops in kernel mode, and the pages written since, from the
  // second shadow) and runs again with a debug register on the stop's RIP:
  // the first hit there with interrupts enabled becomes the stop, which
  // replay's search meets first, so no list of pages is needed (when every
  // earlier hit had interrupts off). At most kMaxRollbackStopsInARow rollback
  // stops in a row (docs/record-replay.md, "Rollback stops").
  bool roll_back_kernel_stops = true;
  // With searched stops: a stop in kernel code that would be installed (no
  // return site took it within the watches) is first searched by the
  // recorder itself: the guest is rolled back to where it resumed from the
  // previous position and runs the stretch again with replay's search
  // (run_to_searched_stop, within kRerunSearchBounds); when the search ends
  // at the stop's exact registers and pages, the stop is logged as a
  // searched stop, which replay finds the same way; else the guest is put
  // back at the stop and it is installed (docs/record-replay.md, "Stops
  // searched at record").
  bool search_by_rerun = true;
  // With count_kernel_entries: a stop in user mode that is installed logs
  // its memory against guest memory right after the kernel's return to user
  // mode after the stretch's last counted entry, or its first return with
  // none (DeltaBase::return_to_user): only what user code wrote since is
  // listed, not the kernel's stack and data after the landmark. A stop that
  // comes right after an entry is moved back to its return instead (a
  // kernel-return stop; docs/record-replay.md, "Deltas based on the return
  // to user mode").
  bool base_stops_on_return_to_user = true;
  // That memory is captured as the guest gets to the return (a debug
  // register on it, record_return_base.cpp); else found by rolling the guest
  // back and running it there as replay will.
  bool capture_returns = true;
  // With searched stops: also search a stop where the signal made it
  // (`rr-vmm record --search-kernel-stops`), only the first in each 64-byte
  // line of code and only when no unlogged stop came since the previous stop
  // (Linux boots took another path when re-executed without them, see
  // docs/record-replay.md). Every stop is a sample of where the guest spends
  // its time, and a line sampled twice holds a loop the search would hit
  // thousands of times (ticks' SYS_KSPIN: ~1700 hits per stop at ~100 us
  // each; installed, such a stop's delta is small); even the first costs
  // ticks' replay 0.19 -> ~1 s for no smaller log.
  bool search_signal_stops = false;
  size_t max_searched_pages = 256;
  // Guest memory the guest is likely to copy whole pages from (the initrd the
  // VMM loaded, which Linux unpacks into its page cache), indexed as it is at
  // the start: a page of a memory delta filled from there is logged as the
  // source's address (librr::PageCopyIndex, log format 2.6) instead of its bytes.
  struct Region {
    uint64_t address = 0, size = 0;
  };
  std::vector<Region> page_copy_sources;
};

struct RecordStats {
  uint64_t landmarks = 0;
  uint64_t async_positions = 0;
  uint64_t searched_positions = 0;        // of those, logged with a pages digest (found by search)
  uint64_t previous_position_deltas = 0;  // async positions whose delta needs no shadow
  uint64_t copied_pages = 0;              // their pages with a range copied from other memory
  uint64_t filled_pages = 0;              // their pages with a range of one byte value
  uint64_t position_memory_syncs = 0;     // landmarks where the second shadow was updated
  uint64_t unlogged_stops = 0;            // asynchronous stops where nothing could happen
  uint64_t deferred_kicks = 0;            // kicks in emulated kernel code put off to its bound
  uint64_t interrupt_window_stops = 0;    // logged stops made by an interrupt-window exit
  uint64_t kernel_return_stops = 0;       // logged stops at a watched return to user mode
  uint64_t kernel_return_watches = 0;     // stops in kernel code moved towards the return
  uint64_t return_site_watches = 0;       // stops in kernel code moved towards a return site
  uint64_t return_site_stops = 0;         // of those, logged at the return site
  uint64_t rollbacks = 0;                 // stops rolled back to their previous position
  uint64_t first_hit_stops = 0;           // logged at the first hit after a rollback
  uint64_t rerun_searches = 0;            // stops the recorder searched for itself
  uint64_t rerun_searched_stops = 0;      // of those, found and logged as searched stops
  uint64_t stretch_cuts = 0;              // searched stops that deliver nothing (interrupts off)
  uint64_t return_to_user_reruns = 0;     // installed stops re-run to the return to user mode
  uint64_t return_to_user_deltas = 0;     // of those, logged with a delta based there
  uint64_t kernel_return_rollbacks_tried =
      0;                                 // stops in user mode re-run to the last entry's return
  uint64_t kernel_return_rollbacks = 0;  // of those, made kernel-return stops there
  uint64_t resume_states_saved = 0;      // vCPU states saved where a re-run may start
  uint64_t return_bases_captured = 0;    // memory captured at returns to user mode
  uint64_t rerun_ns = 0;                 // host time spent re-running stretches
  uint64_t interrupts = 0;
  uint64_t kernel_entries = 0;  // counted with debug registers (all stretches)
  uint64_t unwatched_runs = 0;  // guest runs no stop could end: entries not watched
  uint64_t clock_samples = 0;
  uint64_t idle_skips = 0;
  uint64_t digests = 0;
  uint64_t net_frames = 0;       // received frames logged (channel net0)
  uint64_t net_frame_bytes = 0;  // their payload bytes
};

class RecordSession {
 public:
  // The machine must use `clock` and have dirty-page tracking on; `timeline`
  // is shared with the RecordingSerialInput wired into the machine.
  RecordSession(Machine& machine, VirtualClock& clock, librr::Recorder& recorder,
                Timeline& timeline, SerialInput* serial_input, RecordPolicy policy = {});

  // Runs until the guest ends or Machine::request_stop(); finishes the log.
  RunResult run();
  const RecordStats& stats() const { return stats_; }

 private:
  uint64_t guest_now_from_host() const;
  uint64_t host_time_of(uint64_t guest_ns) const;
  void set_clock(uint64_t guest_ns, bool logged);
  void log_clock_sample(uint64_t guest_ns);
  bool exit_observes_time() const;
  // A device deadline passed in host time (at least `by_ns` ago).
  bool deadline_passed_in_host_time(uint64_t by_ns = 0) const;
  void sample_clock_if_lagging();
  void at_landmark();
  void at_halt();
  bool stop_can_stay_unlogged() const;
  bool interrupt_due() const;
  bool interrupt_overdue() const;
  bool interrupt_window_opened() const;
  void at_async_stop(std::optional<uint64_t> kernel_return = std::nullopt);
  void at_kernel_return();
  bool watch_return_site();
  bool keep_watching_return_site();
  bool count_watch(uint64_t& stat);
  bool watch_kernel_return();
  bool may_watch_return_site(const kvm_sregs& sregs) const;
  void at_return_site();
  void save_resume_state_if_fresh();
  bool roll_back_to_position();
  void cut_long_stretch();
  void start_position();
  bool kernel_only_search_allowed() const;
  bool stretch_searchable_now(uint64_t factor = 1, uint64_t instructions_per_hit = 1) const;
  void clock_at_async_stop();
  void log_async_position(std::optional<uint64_t> kernel_return = std::nullopt);
  void follow_reexecuted_stop();
  librr::MemoryDelta capture_memory(const librr::Position& here);
  std::optional<librr::SearchedStop> searched_memory(const VcpuState& vcpu);
  std::optional<librr::SearchedStop> searched_by_rerun(const VcpuState& stop);
  class RerunFromPosition {
   public:
    RerunFromPosition(RecordSession& session, const std::vector<uint64_t>& written);
    ~RerunFromPosition();
    RerunFromPosition(const RerunFromPosition&) = delete;
    RerunFromPosition& operator=(const RerunFromPosition&) = delete;

   private:
    uint64_t& rerun_ns_;
    uint64_t started_ns_;
  };
  void put_back_first_run(bool rerun_at_landmark, const VcpuState& stop,
                          const SavedPages& stop_pages, const std::vector<uint64_t>& rerun_pages);
  std::optional<std::pair<librr::CodeArrivals, uint64_t>> rerunnable_to_kernel_return(
      const librr::Position& position) const;
  struct KernelReturnRerun {
    KernelReturnSearch result;
    std::vector<uint64_t> written;    // by the first run since the position, ascending
    SavedPages stop_pages;            // those pages as the first run left them
    std::vector<uint64_t> dirty_log;  // KVM's bitmap of what the re-run wrote
  };
  KernelReturnRerun rerun_to_kernel_return(const librr::CodeArrivals& entries, uint64_t return_rip);
  std::optional<uint64_t> rolled_back_to_kernel_return();
  std::optional<uint64_t> rolled_back_to_return_base();
  bool took_return_base();
  void capture_return_base();
  struct ReturnBase;
  const ReturnBase* usable_return_base(const librr::Position& position) const;
  librr::MemoryDelta delta_from_return_base(const ReturnBase& base, uint64_t landmark);
  // A DeltaBase::return_to_user delta: the pages of `gfns` that differ between
  // memory at the return and at the stop. Guest memory now is one of the two;
  // the other is `saved` where it holds the page, else the second shadow.
  enum class GuestMemoryNow { at_stop, at_return };
  librr::MemoryDelta return_to_user_delta(uint64_t landmark, uint64_t return_rip,
                                          const std::vector<uint64_t>& gfns,
                                          const SavedPages& saved, GuestMemoryNow now) const;
  std::span<const uint8_t> guest_page(uint64_t gfn) const;  // throws outside guest memory
  std::optional<librr::MemoryDelta> delta_by_rerun_to_return(const VcpuState& stop,
                                                             uint64_t landmark);
  std::optional<librr::MemoryDelta> delta_from_return_to_user(const VcpuState& stop,
                                                              uint64_t landmark);
  void step_past_rep_string();
  void take_dirty_pages();
  void merge_written(const std::vector<uint64_t>& bitmap);
  void sync_position_memory();
  void try_deliver_interrupt();
  void maybe_digest(bool force);
  void arm_kick();
  bool stop_may_come() const;
  bool watch_kernel_entries_if_a_stop_may_come();
  bool defer_kick_in_emulated_kernel();
  uint64_t lateness_bound(uint64_t deadline) const;
  RunResult finish(RunResult result);

  Machine& machine_;
  VirtualClock& clock_;
  librr::Recorder& recorder_;
  Timeline& timeline_;
  SerialInput* serial_input_;
  RecordingNetInput net_input_;
  RecordPolicy policy_;
  MemoryShadow shadow_;  // mirrored by replay (DeltaBase::shadow deltas)
  DirtyPages dirty_;     // written since the shadow last took them
  // Memory as of `position_memory_at_` (record only), for previous_position
  // deltas; `written_since_position_` lists the pages written since then (by
  // the vCPU or a device model: Machine::take_dirty_log reports both).
  MemoryShadow position_memory_;
  DirtyPages written_since_position_;
  librr::PageCopyIndex page_copies_;  // of policy_.page_copy_sources
  librr::Position position_memory_at_;
  bool position_memory_sync_put_off_ = false;  // at the last landmark (stop_may_come)
  uint32_t landmarks_to_track_ = 0;
  // Whether every write since position_memory_ last copied a page is in the
  // dirty log. Not before the guest runs in 64-bit mode: KVM here does not
  // log writes made in other modes (the host notes), and a 32-bit boot path
  // writes page tables and boot data that replay holds and the copy lacks.
  bool position_memory_complete_ = false;
  uint64_t stretch_started_host_ns_;                 // host time of the last landmark or position
  std::unordered_set<uint64_t> sampled_code_lines_;  // RIP / 64 of every stop in kernel code
  // Since the previous logged stop: no sign of user mode; an unlogged stop
  // (see searched_memory).
  bool kernel_only_since_stop_ = true;
  bool unlogged_stop_since_stop_ = false;
  // The stop being logged is at a watched return site (searched_memory's
  // sampled-line and unlogged-stop rules do not apply).
  bool at_return_site_ = false;
  // The watched return site is to cut an interrupts-off stretch (cut_long_stretch).
  bool cutting_stretch_ = false;
  // The vCPU state as the guest resumed from the last position (rollback);
  // `position_fresh_` until it resumes from there.
  std::optional<VcpuState> resume_state_;
  bool position_fresh_ = false;
  // Memory as of the kernel's first return to user mode after the last
  // position and after its last counted kernel entry since, captured there
  // in the first run (KernelEntryCounter::capture_returns_from_here): what
  // replay reaches by re-executing before it installs a stop in user mode.
  struct ReturnBase {
    SavedPages pages;               // the pages written since the position, as at the return
    std::optional<VcpuState> vcpu;  // on the iretq, when a rollback there may follow
    uint32_t entries = 0;           // counted since the position
    uint64_t return_rip = 0;
  };
  std::optional<ReturnBase> return_base_;
  // A stop rolled back to the last kernel entry's return loses the user code
  // run since: at most this much host time of it (rolled_back_to_kernel_return).
  static constexpr uint64_t kMaxLostUserWorkNs = 2'000'000;
  bool rolled_back_here_ = false;         // since the last position
  uint32_t rollback_stops_in_a_row_ = 0;  // logged stops that came after a rollback
  // After a stop in user mode, the position's vCPU state is saved for a
  // rollback only once this guest has stopped in kernel code that wanted one
  // there (save_resume_state_if_fresh).
  bool rollback_origin_skipped_ = false;  // at this position
  bool rollbacks_after_user_stops_ = false;
  static constexpr uint32_t kMaxRollbackStopsInARow = 2;

  // The watched site is the rolled-back stop's RIP, and every hit of it so
  // far had interrupts off; the stop being logged is the first such hit.
  bool rollback_watch_ = false;
  bool rollback_hits_all_if0_ = true;
  static constexpr size_t kRollbackMaxWrittenPages = 2;
  static constexpr size_t kKernelEntryPages = 4;  // more for a stretch that entered the kernel
  static constexpr uint64_t kRollbackLandmarksAfterStop = 4;
  uint64_t landmarks_since_stop_ = kRollbackLandmarksAfterStop;
  bool first_hit_stop_ = false;
  // Return-site and kernel-return watches since the last position (each
  // lasts until a kick).
  static constexpr uint32_t kReturnSiteWatchesPerStop = 3;
  uint32_t return_site_watches_here_ = 0;
  bool kick_stands_ = false;  // arm_kick keeps the kick armed before a watch hit
  // The device deadline whose kick defer_kick_in_emulated_kernel() put off.
  uint64_t deferred_deadline_ = TimedDevice::kNoDeadline;
  uint64_t kernel_entries_at_stop_ = 0;
  uint64_t host_origin_ns_;
  uint64_t last_digest_guest_ns_;
  uint64_t last_reset_landmark_ = 0;
  bool unlogged_progress_ = false;  // the guest ran since the last logged position
  // An unlogged stop found an interrupt due that the guest could not take:
  // ask KVM for an exit once it can (see interrupt_window_opened()).
  bool want_interrupt_window_ = false;
  bool retry_soon_ = false;               // that stop found an interrupt due
  uint32_t unlogged_stops_in_a_row_ = 0;  // such stops since the last landmark or logged stop
  KernelEntryCounter kernel_entries_;
  std::optional<RunResult> result_;
  RecordStats stats_;
};

}  // namespace vmm
