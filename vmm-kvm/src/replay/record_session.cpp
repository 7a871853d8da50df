#include "replay/record_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "clock/host_clock.h"
#include "machine/vcpu_kicker.h"
#include "replay/instruction_stepper.h"
#include "replay/kernel_return_stop.h"
#include "replay/return_site_stop.h"
#include "replay/return_to_user_step.h"
#include "replay/searched_position.h"
#include "replay/state_digest.h"

namespace vmm {

RecordSession::RecordSession(Machine& machine, VirtualClock& clock, librr::Recorder& recorder,
                             Timeline& timeline, SerialInput* serial_input, RecordPolicy policy)
    : machine_(machine),
      clock_(clock),
      recorder_(recorder),
      timeline_(timeline),
      serial_input_(serial_input),
      net_input_(machine, recorder, timeline),
      policy_(policy),
      shadow_(machine.memory()),
      dirty_(machine.memory().size() / MemoryShadow::kPageSize),
      position_memory_(machine.memory()),
      written_since_position_(machine.memory().size() / MemoryShadow::kPageSize),
      position_memory_at_(timeline.position()),
      stretch_started_host_ns_(host_monotonic_ns()),
      host_origin_ns_(host_monotonic_ns() - clock.now_ns()),
      last_digest_guest_ns_(clock.now_ns()),
      kernel_entries_(machine, policy.count_kernel_entries) {
  machine_.take_dirty_log();  // the shadow starts now: forget earlier writes
  landmarks_to_track_ = policy_.tracked_landmarks_after_stop;
  for (const RecordPolicy::Region& region : policy_.page_copy_sources)
    if (const uint8_t* bytes = machine_.memory().translate(region.address, region.size))
      page_copies_.add_region(region.address, {bytes, region.size});
  kernel_entries_.rearm(machine_.vcpu().get_sregs_for_mode());
  if (policy_.stop_at_kernel_returns)
    kernel_entries_.watch_returns_when([this] { return interrupt_overdue(); });
}

uint64_t RecordSession::guest_now_from_host() const {
  return host_monotonic_ns() - host_origin_ns_;
}

uint64_t RecordSession::host_time_of(uint64_t guest_ns) const { return host_origin_ns_ + guest_ns; }

namespace {

// A logged sample of host time is whole microseconds: the log stores it as
// the difference from the previous one, 2-3 bytes in microseconds instead of
// 4 random-looking ones more in nanoseconds (log format 2.7). The guest's
// timers count in microseconds at best (PIT: 0.84 us). (A sample that is a
// device deadline keeps its nanoseconds: clock_at_async_stop.)
uint64_t whole_microseconds(uint64_t ns) { return ns - ns % 1000; }

}  // namespace

// Replay's twin: ReplaySession::apply_clock.
void RecordSession::set_clock(uint64_t guest_ns, bool logged) {
  if (logged) guest_ns = whole_microseconds(guest_ns);
  if (guest_ns <= clock_.now_ns()) return;
  clock_.advance_to(guest_ns);
  if (logged) log_clock_sample(guest_ns);
  machine_.advance_timed_devices();
}

// The one place a clock sample is recorded (replay: apply_clock_if_next).
void RecordSession::log_clock_sample(uint64_t guest_ns) {
  recorder_.clock(timeline_.position(), guest_ns);
  ++stats_.clock_samples;
}

// The exit's port or MMIO address belongs to a device that reads the clock.
bool RecordSession::exit_observes_time() const {
  const kvm_run& run = machine_.run_state();
  const Device* device = nullptr;
  if (run.exit_reason == KVM_EXIT_IO) {
    if (const auto* range = machine_.pio_bus().find(run.io.port)) device = range->device;
  } else if (run.exit_reason == KVM_EXIT_MMIO) {
    if (const auto* range = machine_.mmio_bus().find(run.mmio.phys_addr)) device = range->device;
  }
  return dynamic_cast<const TimedDevice*>(device) != nullptr;
}

bool RecordSession::deadline_passed_in_host_time(uint64_t by_ns) const {
  const uint64_t deadline = machine_.next_deadline();
  return deadline != TimedDevice::kNoDeadline && guest_now_from_host() >= deadline + by_ns;
}

void RecordSession::sample_clock_if_lagging() {
  const uint64_t now = guest_now_from_host();
  if (now >= clock_.now_ns() + policy_.clock_granularity_ns) set_clock(now, true);
}

void RecordSession::try_deliver_interrupt() {
  // Not on the way to a return site or a kernel return: the vCPU stands
  // between positions (a kick let it run on), and the stop there will be the
  // position. (Delivered at the kick, a Linux boot logged the interrupt at
  // the landmark before it, where replay found interrupts off.)
  if (kernel_entries_.watching_return_site() || kernel_entries_.watching_return() ||
      !machine_.interrupt_deliverable())
    return;
  const uint8_t vector = machine_.inject_interrupt();
  recorder_.interrupt(timeline_.position(), vector, 0);
  ++stats_.interrupts;
  // A position where the kernel's IDT is in place (it takes interrupts):
  // follow it if it moved.
  kernel_entries_.rearm(machine_.vcpu().get_sregs_for_mode());
}

void RecordSession::maybe_digest(bool force) {
  const uint64_t now = clock_.now_ns();
  if (!force && now - last_digest_guest_ns_ < policy_.digest_interval_ns) return;
  last_digest_guest_ns_ = now;
  recorder_.state_digest(
      compute_state_digest(machine_, timeline_.position(), policy_.rules.memory_digest));
  ++stats_.digests;
}

// The stop is due `max_interrupt_lateness_ns` after the next deadline, but
// never sooner than that after this entry: a guest whose clock fell behind
// (this thread was preempted on a loaded host; the idle skip advances one
// deadline at a time) then catches up at its own landmarks, instead of being
// stopped before its first instruction, one asynchronous position (~100-
// 2000 bytes of log) per missed tick. Measured on an idle guest: 17 of them
// per second, 95% of its log.
void RecordSession::arm_kick() {
  uint64_t at = VcpuKicker::kNever;
  const uint64_t now = host_monotonic_ns();
  const uint64_t deadline = machine_.next_deadline();
  if (deadline != TimedDevice::kNoDeadline)
    at = std::max(host_time_of(deadline), now) + lateness_bound(deadline);
  // An interrupt that could not be taken at the last stop is tried again
  // soon (and at the interrupt window, if KVM gives one first).
  if (machine_.pic().has_pending_interrupt() || retry_soon_)
    at = std::min(at, now + policy_.retry_quantum_ns);
  // A watch hit stepped over is no resume: the kick armed before it stands.
  // (Re-armed after each hit, a return site hit every ~100 us with interrupts
  // off put the kick off for as long: a Linux boot freeing pages ran 0.4-1.4
  // s without a stop, and the stretch, far past the search bound, was
  // installed with ~300 pages.)
  if (std::exchange(kick_stands_, false)) at = std::min(at, machine_.kicker().armed_at());
  machine_.kicker().kick_at(at);
}

// Whether an asynchronous stop may end the guest's next run: a kick is or
// will be armed (a device deadline, a pending interrupt, a retry), an input
// source may kick, or a watch waits for its hit. Where none may, the run ends
// at a landmark, and what only a stop needs is left out: the kernel-entry
// count (KernelEntryCounter::set_unwatched) and the copy of memory at the
// landmark before it (sync_position_memory). spin3 and the other test guests
// boot for ~145 landmarks with no timer set.
bool RecordSession::stop_may_come() const {
  return machine_.kicker().armed_at() != VcpuKicker::kNever ||
         machine_.next_deadline() != TimedDevice::kNoDeadline ||
         machine_.pic().has_pending_interrupt() || retry_soon_ || serial_input_ != nullptr ||
         machine_.net() != nullptr || kernel_entries_.watching_return() ||
         kernel_entries_.watching_return_site();
}

// Before each run, with the kick armed. Unwatched, the guest may have run
// user code unseen: no search nor rollback relies on kernel mode until the
// next stop. Returns whether the run is watched.
bool RecordSession::watch_kernel_entries_if_a_stop_may_come() {
  const bool stop_may_come = this->stop_may_come();
  kernel_entries_.set_unwatched(!stop_may_come);
  if (stop_may_come || !policy_.count_kernel_entries) return stop_may_come;
  kernel_only_since_stop_ = false;
  ++stats_.unwatched_runs;
  return false;
}

// How late the interrupt of device deadline `deadline` may be: the larger
// bound once its kick was put off (defer_kick_in_emulated_kernel).
uint64_t RecordSession::lateness_bound(uint64_t deadline) const {
  return deadline != TimedDevice::kNoDeadline && deadline == deferred_deadline_
             ? policy_.emulated_kernel_lateness_ns
             : policy_.max_interrupt_lateness_ns;
}

// A kick for a due timer that found the guest in kernel code this host
// emulates, before the larger bound (RecordPolicy::emulated_kernel_lateness_ns)
// has passed: the kick is put off to that bound, once per deadline. Decided
// at the kick, not where the kick is armed: the last exit before a user loop
// (spin3: the timer handler's EOI) is in kernel code too.
bool RecordSession::defer_kick_in_emulated_kernel() {
  if (policy_.emulated_kernel_lateness_ns <= policy_.max_interrupt_lateness_ns ||
      machine_.pic().has_pending_interrupt() || kernel_entries_.watching_return_site() ||
      kernel_entries_.watching_return() || (serial_input_ && serial_input_->has_data()) ||
      net_input_.ready())
    return false;
  const uint64_t deadline = machine_.next_deadline();
  if (deadline == TimedDevice::kNoDeadline || deadline == deferred_deadline_ ||
      guest_now_from_host() >= deadline + policy_.emulated_kernel_lateness_ns ||
      current_cpl(machine_) != 0)
    return false;
  // Not a loop that waits for the interrupt (it writes a counter at most, as
  // roll_back_to_position assumes): put off, it only waits longer (ticks'
  // SYS_KSPIN counts ticks: its recording took 1.15 s instead of 0.54 s).
  // Nor kernel work entered from user mode since the previous stop, whose
  // stop is not searched anyway (ticks' system calls: 0.75 s).
  if (!kernel_only_search_allowed()) return false;
  take_dirty_pages();
  if (written_since_position_.listed().size() <= kRollbackMaxWrittenPages) return false;
  deferred_deadline_ = deadline;
  return true;
}

// A PIO or MMIO exit. Twin: ReplaySession::at_landmark.
void RecordSession::at_landmark() {
  // Before the device runs, so a PIT read sees fresh time. Elsewhere the
  // guest cannot tell: no sample (an idle guest woken by its timer touches
  // only the PIC and would otherwise log one per tick). An overdue deadline
  // is sampled only where the guest can take its interrupt here (IF=1):
  // raised at a landmark with interrupts off (a Linux boot's console output
  // and PIC masking), it was delivered at a later stop anyway, which then
  // logged a second sample (its deadline was no longer the one passed); 221
  // of a boot's ~800 samples, and ticks' log 1.67 -> 1.31 KB.
  const bool interrupts_on = machine_.run_state().if_flag != 0;
  if (exit_observes_time() || (interrupts_on && deadline_passed_in_host_time()))
    sample_clock_if_lagging();
  machine_.dispatch_synchronous_exit();
  if (auto done = machine_.take_pending_result()) {
    result_ = std::move(done);
    return;
  }
  machine_.uart().pull_input();
  net_input_.pump();
  maybe_digest(false);
}

// HLT: wait in host time, but let guest time jump to the next deadline by a
// rule replay repeats without a log entry (the idle skip). Twin:
// ReplaySession::at_halt.
void RecordSession::at_halt() {
  machine_.dispatch_synchronous_exit();
  kvm_run& run = machine_.run_state();
  // The wait below has its own deadline; run() re-arms the kick timer after
  // it (see arm_kick), so it cannot fire just as the guest resumes.
  machine_.kicker().kick_at(VcpuKicker::kNever);
  for (;;) {
    if (machine_.take_stop_request()) {
      result_ = RunResult{RunResult::Kind::kStopped, 0, "stopped while the guest was halted"};
      return;
    }
    machine_.advance_timed_devices();
    if (machine_.pic().has_pending_interrupt()) return;
    if (!run.if_flag) {
      result_ = RunResult{RunResult::Kind::kHaltedForever, 0,
                          "guest halted with interrupts disabled at " + machine_.describe_rip()};
      return;
    }
    const uint64_t deadline = machine_.next_deadline();
    const bool has_deadline = deadline != TimedDevice::kNoDeadline;
    if ((serial_input_ && serial_input_->has_data()) || net_input_.ready()) {
      const uint64_t now = guest_now_from_host();
      if (has_deadline && deadline <= now) {
        set_clock(deadline, false);
        ++stats_.idle_skips;
        continue;
      }
      set_clock(now, true);
      const size_t bytes = machine_.uart().pull_input();
      if (bytes + net_input_.pump() > 0) continue;
    }
    if (!has_deadline && !serial_input_ && !machine_.net_can_receive()) {
      result_ =
          RunResult{RunResult::Kind::kHaltedForever, 0,
                    "guest halted with no timer armed and no input at " + machine_.describe_rip()};
      return;
    }
    machine_.kicker().wait_for_kick(has_deadline ? host_time_of(deadline) : VcpuKicker::kNever);
    machine_.kicker().acknowledge(&run);
    if (has_deadline && guest_now_from_host() >= deadline) {
      set_clock(deadline, false);
      ++stats_.idle_skips;
    }
  }
}

// A stop where nothing can happen: no input is waiting and the guest cannot
// take an interrupt (IF=0, an interrupt shadow, or one already injected). The
// stop itself leaves the guest unchanged, so if the session changes nothing
// either (no clock sample, no input) it need not be logged: replay runs
// through it. Measured: ticks' emulated-CPL0 stretches gave ~90 such stops
// per run, each a logged ~2 KB vCPU state delivering nothing.
bool RecordSession::stop_can_stay_unlogged() const {
  if ((serial_input_ && serial_input_->has_data()) || net_input_.ready()) return false;
  const kvm_run& run = machine_.run_state();
  return !(run.if_flag && run.ready_for_interrupt_injection);
}

// An interrupt is pending, or a device deadline has passed in host time (the
// clock sample at the next logged stop raises its interrupt).
bool RecordSession::interrupt_due() const {
  return machine_.pic().has_pending_interrupt() || deadline_passed_in_host_time();
}

// Whether to stop at the next kernel return (kernel_return_stop.h): an
// interrupt is pending, or its deadline passed half the lateness bound ago.
// Not at once: a guest that reaches a landmark soon takes it there for ~1
// byte of log (demo, whose tasks print and sleep: 3-11 kernel-return stops
// of ~15 bytes per run when taken at once).
bool RecordSession::interrupt_overdue() const {
  return machine_.pic().has_pending_interrupt() ||
         deadline_passed_in_host_time(policy_.max_interrupt_lateness_ns / 2);
}

// KVM stopped the vCPU because the guest can now take an interrupt, which
// record asked for at an unlogged stop where it could not (IF=0: in the
// ticks guest a user loop spends most of its time in emulated system calls).
// On these hosts that exit does not come at a deterministic instruction, so
// it is no landmark; it is an asynchronous stop like a signal's, logged with
// the full state. Without it the next try came a retry quantum later, again
// mostly at IF=0: ticks recorded its timer ticks ~5x late and ran 2.5x longer.
bool RecordSession::interrupt_window_opened() const {
  return want_interrupt_window_ && machine_.run_state().exit_reason == KVM_EXIT_IRQ_WINDOW_OPEN;
}

// Replay's twin: ReplaySession::clock_at_async_stop. Under replay rules 3 a
// stop made for a due timer takes that deadline as the time, which replay
// derives, instead of a sample of host time. Host time is up to the lateness
// bound (and the stop's own delay: return-site watches) ahead then, and the
// next sample the guest can see catches up. A stop much later than that (a
// preempted VMM thread) or made for something else logs host time as before;
// a sample is logged even when it does not move the clock, because its
// absence is what tells replay to use the deadline. A sample is also logged
// where more deadlines than that one have passed in host time: at the first
// one alone the guest would be stopped again at once for each period missed
// (a Linux boot: ~300 such stops, ~10 bytes each). The sample is the last
// deadline passed, not host time: so many whole periods after the previous
// sample, it takes ~1 byte where host time took ~3. (The devices step through
// each deadline, which leaves them as replay's one step to the sample does:
// the PIT's pulse is latched once either way.)
void RecordSession::clock_at_async_stop() {
  const uint64_t now = guest_now_from_host();
  if (!policy_.rules.stop_clock_from_deadline) return set_clock(now, true);
  const uint64_t deadline = machine_.next_deadline();
  const bool timer_stop =
      deadline != TimedDevice::kNoDeadline && deadline <= now &&
      now - deadline <= (kReturnSiteWatchesPerStop + 2) * lateness_bound(deadline) &&
      deadline > clock_.now_ns();
  if (timer_stop) {
    set_clock(deadline, false);
    if (machine_.next_deadline() > now) return;
    for (uint64_t next; (next = machine_.next_deadline()) <= now && next > clock_.now_ns();)
      set_clock(next, false);
    return log_clock_sample(clock_.now_ns());
  }
  // As replay applies a sample: the devices catch up even if the clock stays.
  const uint64_t sample = std::max(whole_microseconds(now), clock_.now_ns());
  log_clock_sample(sample);
  clock_.advance_to(sample);
  machine_.advance_timed_devices();
}

// The vCPU was stopped between landmarks: log enough to install this exact
// state on replay (or, at a kernel return, to find it again). Twin:
// ReplaySession::enter_async_stop.
void RecordSession::at_async_stop(std::optional<uint64_t> kernel_return) {
  log_async_position(kernel_return);
  clock_at_async_stop();
  machine_.uart().pull_input();
  net_input_.pump();
  // Replay delivers these inputs at this position too, after installing it:
  // a frame the NIC wrote here is part of the memory the next stop's delta
  // is based on. The vCPU has not run since the stop took the dirty log, so
  // only the device models' writes can be new (no KVM_GET_DIRTY_LOG).
  merge_written(machine_.take_device_writes());
  position_memory_.refresh(written_since_position_.take());
}

void RecordSession::take_dirty_pages() { merge_written(machine_.take_dirty_log()); }

void RecordSession::merge_written(const std::vector<uint64_t>& bitmap) {
  dirty_.merge(bitmap);
  written_since_position_.merge(bitmap);
}

// At a landmark (RecordPolicy::tracked_landmarks_after_stop): the second
// shadow takes the pages written since it was last updated, so it holds
// memory as of this landmark, which is what replay holds when it reaches it.
void RecordSession::sync_position_memory() {
  if (landmarks_to_track_ == 0) return;
  if (landmarks_to_track_ != RecordPolicy::kEveryLandmark) --landmarks_to_track_;
  take_dirty_pages();
  if (!position_memory_complete_ && in_64_bit_mode(machine_.vcpu().get_sregs_for_mode())) {
    // The first landmark tracked in 64-bit mode: from here on the dirty log
    // sees every write, so the copy is made whole once (a Linux or test-guest
    // boot starts in 32-bit mode: PVH).
    written_since_position_.take();
    position_memory_.refresh_all();
    position_memory_complete_ = true;
  } else {
    position_memory_.refresh(written_since_position_.take());
  }
  position_memory_at_ = timeline_.position();
  ++stats_.position_memory_syncs;
}

// The memory part of the asynchronous position `here`: based on the memory of
// the position before it when the second shadow holds exactly that, else on
// the shadow replay keeps.
librr::MemoryDelta RecordSession::capture_memory(const librr::Position& here) {
  take_dirty_pages();
  if (position_memory_complete_ && position_memory_at_ == previous_position_of(here)) {
    librr::MemoryDelta delta = position_memory_.capture_since_previous_position(
        here.landmark, written_since_position_.take(), &page_copies_);
    shadow_.refresh(delta);  // replay's shadow takes the listed pages as well
    ++stats_.previous_position_deltas;
    for (const librr::PageDelta& page : delta.pages) {
      const librr::PageForm form = librr::page_form(page);
      stats_.copied_pages += form == librr::PageForm::copied_range;
      stats_.filled_pages += form == librr::PageForm::filled_range;
    }
    return delta;
  }
  librr::MemoryDelta delta = shadow_.capture(last_reset_landmark_, dirty_.take());
  last_reset_landmark_ = timeline_.landmark();
  position_memory_.refresh(written_since_position_.take());
  return delta;
}

// The vCPU stands on the kernel's iretq that the kernel-entry counter
// watches while an interrupt is due (kernel_return_stop.h). A return to
// user mode is stepped over and, if the guest can take an interrupt there,
// becomes a kernel-return stop. Twin: ReplaySession::reach_kernel_return_if_next.
void RecordSession::at_kernel_return() {
  const uint64_t return_rip = machine_.vcpu().get_regs().rip;
  if (!at_return_to_user(machine_)) return kernel_entries_.step_over_here();
  const bool stepped = step_return_to_user(machine_);  // disarms the debug registers
  kernel_entries_.stop_watching_return();              // and re-arms the entries
  if (!stepped) return;                                // the iretq runs as usual
  machine_.settle_vcpu();  // IF and the interrupt shadow after the return
  unlogged_progress_ = true;
  if (stop_can_stay_unlogged()) return;
  unlogged_stops_in_a_row_ = 0;
  ++stats_.kernel_return_stops;
  at_async_stop(return_rip);
}

// A stop replay reaches by re-executing the stretch (searched, kernel
// return): its memory equals record's there, so the second shadow follows
// (memory as of this position) and the first stays as it is (the pages stay
// listed in dirty_ for the next delta based on it).
void RecordSession::follow_reexecuted_stop() {
  take_dirty_pages();
  position_memory_.refresh(written_since_position_.take());
}

// Whether the stretch since the previous stop allows a searched stop: the
// search is on and the guest provably stayed in kernel mode (no sign of user
// mode, no kernel entry counted from user mode; see RecordPolicy).
bool RecordSession::kernel_only_search_allowed() const {
  return policy_.searched_cpl0_instructions_per_second > 0 && policy_.count_kernel_entries &&
         kernel_only_since_stop_ &&
         kernel_entries_.total_not_from_kernel() == kernel_entries_at_stop_;
}

// The stretch since the last landmark or position, `factor` times as long
// as it is now, is short enough for a bounded search for a site hit at most
// once every `instructions_per_hit` instructions.
bool RecordSession::stretch_searchable_now(uint64_t factor, uint64_t instructions_per_hit) const {
  return stretch_searchable(factor * (host_monotonic_ns() - stretch_started_host_ns_),
                            policy_.searched_cpl0_instructions_per_second, instructions_per_hit);
}

// The memory part of a searched position, when this stop may be one.
std::optional<librr::SearchedStop> RecordSession::searched_memory(const VcpuState& vcpu) {
  const bool at_return_site = std::exchange(at_return_site_, false);
  const bool first_hit = std::exchange(first_hit_stop_, false);
  // A rollback's first hit is found from the position whatever ran before it
  // (user code, kernel entries): no earlier hit had interrupts on.
  if (!(kernel_only_search_allowed() || (first_hit && rolled_back_here_)) ||
      (!at_return_site && (!policy_.search_signal_stops || unlogged_stop_since_stop_)) ||
      (vcpu.sregs.cs.selector & 3) != 0)
    return std::nullopt;
  constexpr unsigned kCodeLineShift = 6;
  const bool sampled_before = !sampled_code_lines_.insert(vcpu.regs.rip >> kCodeLineShift).second;
  // A rollback's first hit may be at any instruction (the one it resumed at).
  const uint64_t instructions_per_hit =
      at_return_site && !first_hit ? kInstructionsPerReturnSiteHit : 1;
  if ((sampled_before && !at_return_site) || !stretch_searchable_now(1, instructions_per_hit) ||
      !stop_searchable(machine_, vcpu))
    return std::nullopt;
  take_dirty_pages();
  // The pages written since the previous position, where replay's search
  // starts: every page whose content changes between two hits of the search
  // is among them. (Until 2026-11-27 those since the previous stop: on a
  // Linux boot, landmarks in between, twice as many.)
  // Replay re-executes up to here: no state (format 2.9), one 32-bit hash of
  // the registers and the pages (2.11).
  librr::SearchedStop stop{vcpu.regs.rip, 0, {}};
  stop.hash_bits = 32;
  stop.one_hash = true;
  // A first hit after a rollback needs no pages: every earlier hit of the
  // search has interrupts off, the stop has them on (roll_back_to_position).
  if (!first_hit) stop.pages.gfns = written_since_position_.listed();
  if (stop.pages.gfns.size() > policy_.max_searched_pages) return std::nullopt;
  stop.pages.xxh3 = hash_guest_pages(machine_, stop.pages.gfns, &vcpu.regs) & stop.hash_mask();
  // Replay tracks the pages the guest writes from the previous position as
  // this recorder does (KVM's dirty log), so they need not be listed (2.12):
  // not after a rollback, whose first run's pages stay listed here (put back
  // from the second shadow, they hash the same, but replay never wrote them).
  if (!first_hit && !rolled_back_here_) {
    stop.pages_implied = true;
    stop.pages.gfns.clear();
  }
  follow_reexecuted_stop();
  return stop;
}

// At a stop in kernel code that would be logged: if it may become a
// searched stop at a return site (return_site_stop.h), watch one (the next
// call's, else the running function's) and let the guest run on to it.
// True if it does.
bool RecordSession::watch_return_site() {
  const kvm_sregs sregs = machine_.vcpu().get_sregs_for_mode();
  if (!may_watch_return_site(sregs)) return false;
  // A watch the kick ended without a hit is followed by one on another
  // site from where the guest now is, up to kReturnSiteWatchesPerStop.
  const std::optional<uint64_t> watched = kernel_entries_.return_site();
  const kvm_regs regs = machine_.vcpu().get_regs();
  auto site = next_site_ahead(machine_, sregs, regs.rip);
  if (!site || site == watched) site = innermost_return_site(machine_, sregs, regs);
  if (!site || site == watched) return false;
  kernel_entries_.stop_watching_return_site();
  rollback_watch_ = false;
  cutting_stretch_ = false;
  if (!kernel_entries_.watch_return_site(*site)) return false;
  return count_watch(stats_.return_site_watches);
}

// With no other site to watch and no rollback to make, the watch the kick
// ended goes on: a copy loop that outlasted the kick, a loop that returns
// later (Linux's tcp_init filling its hash tables). After a rollback was
// possible instead, so that a loop waiting for the interrupt is not kept
// waiting (ticks recorded 20 % slower so). Not a rollback's own watch, whose
// RIP need not be a return site (kInstructionsPerReturnSiteHit).
bool RecordSession::keep_watching_return_site() {
  if (!kernel_entries_.watching_return_site() || rollback_watch_ ||
      !may_watch_return_site(machine_.vcpu().get_sregs_for_mode()))
    return false;
  cutting_stretch_ = false;
  return count_watch(stats_.return_site_watches);
}

// At a stop in kernel code that would be logged, where the kernel was entered
// from user mode and has not returned yet (a Linux page fault outlasting the
// kick, which no search may cover: the stretch ran user code): the stop is
// moved to the kernel's return to user mode, a kernel-return stop as those
// whose watch starts at the arrival (kernel_return_stop.h), and one already
// watched goes on. Up to kReturnSiteWatchesPerStop kicks, then the stop is
// made where the guest is.
bool RecordSession::watch_kernel_return() {
  if (!policy_.stop_at_kernel_returns || return_site_watches_here_ >= kReturnSiteWatchesPerStop ||
      (!kernel_entries_.watching_return() &&
       !kernel_entries_.watch_return_from_kernel(machine_.vcpu().get_sregs_for_mode())))
    return false;
  return count_watch(stats_.kernel_return_watches);
}

// One more watch for this stop (kReturnSiteWatchesPerStop), counted in
// `stat` too; true.
bool RecordSession::count_watch(uint64_t& stat) {
  ++return_site_watches_here_;
  ++stat;
  return true;
}

// Whether a return-site watch may start or go on: searched stops on and
// allowed after this stretch, no input waiting (it is delivered at once),
// 64-bit kernel mode, a stretch a search still covers, and watches left.
bool RecordSession::may_watch_return_site(const kvm_sregs& sregs) const {
  return policy_.stop_at_return_sites && kernel_only_search_allowed() &&
         !(serial_input_ && serial_input_->has_data()) && !net_input_.ready() &&
         stretch_searchable_now(1, kInstructionsPerReturnSiteHit) && in_64_bit_kernel_mode(sregs) &&
         return_site_watches_here_ < kReturnSiteWatchesPerStop;
}

// The guest stands on the watched return site. With an interrupt it can
// take, the stop is made here (a searched stop, if it still qualifies);
// else the guest goes on and the watch with it, until the next kick.
void RecordSession::at_return_site() {
  machine_.settle_vcpu();  // the interrupt flags as of this instruction
  unlogged_progress_ = true;
  const bool interrupts_on = machine_.run_state().if_flag != 0;
  const bool cut = std::exchange(cutting_stretch_, false);
  if (stop_can_stay_unlogged()) {
    if (interrupts_on) rollback_hits_all_if0_ = false;  // an interrupt shadow
    if (!cut) return kernel_entries_.step_over_here();
    // A cut only while a search can still cover the stretch (an installed
    // position that delivers nothing would cost more than it saves).
    if (!stretch_searchable_now(1, kInstructionsPerReturnSiteHit)) {
      kernel_entries_.stop_watching_return_site();
      return kernel_entries_.step_over_here();
    }
    ++stats_.stretch_cuts;
  }
  kernel_entries_.stop_watching_return_site();
  unlogged_stops_in_a_row_ = 0;
  at_return_site_ = true;
  first_hit_stop_ = rollback_watch_ && rollback_hits_all_if0_ && interrupts_on;
  if (first_hit_stop_)
    ++stats_.first_hit_stops;
  else
    ++stats_.return_site_stops;
  at_async_stop();
}

// At an unlogged stop with an interrupt due (interrupts off): when the
// stretch since the previous position has grown past half of what a search
// may cover, watch a return site to cut it with a position that delivers
// nothing (a searched stop, ~35 bytes). Without it, the stop at the
// interrupt window that ends a long interrupts-off stretch could not be
// searched and was installed (~700 bytes: about half of a Linux boot's
// installed stops). Not with the recorder's own search, which searches that
// stop (searched_by_rerun): a Linux boot's ~170 cuts, 18 % of its positions,
// gave way to ~80 more searches at record (log 9.3-10.5 -> 8.1 KB, record
// 45 -> 49 s).
void RecordSession::cut_long_stretch() {
  if (cutting_stretch_ || policy_.search_by_rerun || kernel_entries_.watching_return_site() ||
      policy_.searched_cpl0_instructions_per_second <= 0 ||
      stretch_searchable_now(2, kInstructionsPerReturnSiteHit) ||
      !stretch_searchable_now(1, kInstructionsPerReturnSiteHit))
    return;
  cutting_stretch_ = watch_return_site();
}

// At a position (landmark or logged stop): return-site watches and rollbacks
// start over (the counter's watch ends with KernelEntryCounter::restart());
// the vCPU state may be captured as the guest resumes (save_resume_state_if_fresh).
void RecordSession::start_position() {
  return_site_watches_here_ = 0;
  resume_state_.reset();
  return_base_.reset();
  position_fresh_ = true;
  rolled_back_here_ = false;
  rollback_origin_skipped_ = false;
  rollback_watch_ = false;
  cutting_stretch_ = false;
}

// Where the guest resumes from a position in kernel code that a later stop
// may roll back to: its vCPU state, with a landmark's port or MMIO read
// completed and an interrupt injected there pending in it. A capture costs
// ~20 us (hello, 489 landmarks in kernel code and no stop: record 20 -> 30
// ms when taken at every landmark), so only where a stop may follow: for a
// rollback, at logged stops and the kRollbackLandmarksAfterStop landmarks
// after one (a loop that waits for interrupts without exits runs from one
// interrupt handler's last port write, the EOI, to the next stop), after a
// stop in user mode only once a kernel stop wanted a rollback there (the
// handler returns to user code; ticks' SYS_KSPIN then enters a waiting loop
// from there, spin3's loops never do: its ~65 captures, ~3 ms, were never
// used, and ticks loses one rollback to learn it); for the
// recorder's own search (searched_by_rerun), wherever a device deadline is
// set, which may stop the stretch ahead (a Linux boot: ~23,000 landmarks).
// Wherever a deadline is set, the kernel's return to user mode is watched
// too, so that a stop in user mode may be based there (capture_return_base).
void RecordSession::save_resume_state_if_fresh() {
  if (!std::exchange(position_fresh_, false)) return;
  const bool rollback_may_follow =
      policy_.roll_back_kernel_stops && landmarks_since_stop_ <= kRollbackLandmarksAfterStop;
  const bool for_rollback =
      rollback_may_follow && (kernel_only_since_stop_ || rollbacks_after_user_stops_);
  const bool deadline_set = machine_.next_deadline() != TimedDevice::kNoDeadline;
  const bool for_rerun = policy_.search_by_rerun && deadline_set;
  // delta_from_return_to_user: a stop in user mode may follow, whatever came before.
  const bool for_return_to_user =
      policy_.base_stops_on_return_to_user && policy_.count_kernel_entries && deadline_set;
  // A rollback (roll_back_to_position) may follow user code and counted entries.
  const bool for_rerun_from_here = for_rollback || (for_rerun && kernel_only_search_allowed()) ||
                                   (for_return_to_user && !policy_.capture_returns);
  const bool rollback_origin_skipped = rollback_may_follow && !for_rollback;
  if (!for_rerun_from_here && !for_return_to_user && !rollback_origin_skipped) return;
  if (!position_memory_complete_ || position_memory_at_ != timeline_.position() ||
      !in_64_bit_kernel_mode(machine_.vcpu().get_sregs_for_mode()))
    return;
  if (for_return_to_user && policy_.capture_returns) kernel_entries_.capture_returns_from_here();
  if (!for_rerun_from_here) {
    rollback_origin_skipped_ = rollback_origin_skipped;
    return;
  }
  machine_.settle_vcpu();
  resume_state_ = machine_.save_vcpu_state();
  ++stats_.resume_states_saved;
  // The TSC is host time: restoring it would set the guest's back.
  resume_state_->drop_time_stamp_counter();
}

// At a stop in kernel code that would be logged and that no return site
// took (a loop that calls nothing and does not return before the interrupt:
// one that waits for it, or a long copy): roll the guest back to where it
// resumed from the previous position (memory from the second shadow, which
// holds it as of that position, and the saved vCPU state) and watch the
// stop's RIP, once per position. The first hit there with interrupts on
// becomes the stop. The guest runs the stretch again: it made no exit in
// it, so nothing outside it saw the first run, and the second is the one
// recorded. What the first run did past that hit is lost, so only a stretch
// that wrote at most kRollbackMaxWrittenPages pages is rolled back: a loop
// that waits for the interrupt (a flag, a counter), whose lost passes did
// nothing. A loop that computes in registers for longer than a tick would
// lose every tick's work that way, for ever: never more than
// kMaxRollbackStopsInARow rollback stops in a row (at worst such a loop runs
// at a third of its speed; until 2026-11-27 one, which left the second tick
// of ticks' SYS_KSPIN installed once its first was a rollback stop too).
// Rolling back any stretch cost a Linux boot 6x its record time as the first
// choice and 3.5x after the return sites (each threw away up to a tick of
// kernel work, the guest fell behind its timer, stops came faster). True if
// it rolled back.
bool RecordSession::roll_back_to_position() {
  if (!policy_.roll_back_kernel_stops || policy_.searched_cpl0_instructions_per_second <= 0 ||
      (!resume_state_ && !rollback_origin_skipped_) || rolled_back_here_ ||
      rollback_stops_in_a_row_ >= kMaxRollbackStopsInARow ||
      position_memory_at_ != timeline_.position())
    return false;
  const kvm_sregs sregs = machine_.vcpu().get_sregs_for_mode();
  const uint64_t rip = machine_.vcpu().get_regs().rip;
  if (!in_64_bit_kernel_mode(sregs) || !searchable_instruction_at(machine_, sregs, rip))
    return false;
  take_dirty_pages();
  const std::vector<uint64_t> written = written_since_position_.listed();
  // The work lost is what ran after the stop's first hit. A stretch that
  // entered the kernel (ticks' SYS_KSPIN, from user mode) also wrote the
  // user code's stack, the entry's kernel stack and the task's bookkeeping
  // before that, which run again the same: a few pages more.
  const std::optional<librr::CodeArrivals> entries = kernel_entries_.arrivals();
  const bool entered = entries && entries->count > 0;
  if (written.size() > kRollbackMaxWrittenPages + (entered ? kKernelEntryPages : 0)) return false;
  if (!resume_state_) {  // not saved after a stop in user mode: from now on it is
    rollbacks_after_user_stops_ = true;
    return false;
  }
  position_memory_.restore_guest(written);
  machine_.restore_vcpu_state(*resume_state_);
  machine_.settle_vcpu();
  kernel_entries_.restart();
  return_base_.reset();
  rolled_back_here_ = true;
  ++stats_.rollbacks;
  stretch_started_host_ns_ = host_monotonic_ns();
  if (!kernel_entries_.watch_return_site(rip)) return true;  // runs on unwatched
  rollback_watch_ = true;
  rollback_hits_all_if0_ = true;
  return true;
}

void RecordSession::log_async_position(std::optional<uint64_t> kernel_return) {
  machine_.kicker().acknowledge(&machine_.run_state());
  unlogged_progress_ = false;
  timeline_.enter_async_stop();
  librr::AsyncPosition record;
  record.pos = timeline_.position();
  record.vcpu_state_format = kVcpuStateFormat;
  if (!kernel_return) step_past_rep_string();
  VcpuState vcpu = machine_.save_vcpu_state();
  vcpu.drop_time_stamp_counter();
  if (kernel_return) {
    // Replay re-executes up to here: no state, no memory (kernel_return_stop.h).
    librr::KernelReturn stop{*kernel_return, general_registers_xxh3(vcpu.regs)};
    stop.hash_bits = 32;  // a check only (format 2.11)
    stop.registers_xxh3 &= stop.hash_mask();
    record.memory = stop;
    follow_reexecuted_stop();
  } else {
    std::optional<librr::SearchedStop> stop = searched_memory(vcpu);
    if (!stop && (stop = searched_by_rerun(vcpu))) follow_reexecuted_stop();
    if (stop) {
      record.memory = std::move(*stop);
      ++stats_.searched_positions;
    } else {
      librr::ByteWriter state;
      vcpu.save(state);
      record.vcpu_state = state.take();
      if (auto delta = delta_from_return_to_user(vcpu, record.pos.landmark))
        record.memory = std::move(*delta);
      else
        record.memory = capture_memory(record.pos);
    }
  }
  stretch_started_host_ns_ = host_monotonic_ns();
  kernel_only_since_stop_ = (vcpu.sregs.cs.selector & 3) == 0;
  unlogged_stop_since_stop_ = false;
  // A guest seen outside 64-bit mode may have written memory the dirty log
  // missed: the copy is whole again only at the next landmark in 64-bit mode.
  if (!in_64_bit_mode(vcpu.sregs)) position_memory_complete_ = false;
  kernel_entries_at_stop_ = kernel_entries_.total_not_from_kernel();
  landmarks_since_stop_ = 0;
  rollback_stops_in_a_row_ = rolled_back_here_ ? rollback_stops_in_a_row_ + 1 : 0;
  start_position();
  // Only a stop in user mode needs the count (kernel_entry_counter.h).
  if ((vcpu.sregs.cs.selector & 3) == 3) record.kernel_entries = kernel_entries_.arrivals();
  kernel_entries_.restart();
  kernel_entries_.rearm(vcpu.sregs);
  position_memory_at_ = record.pos;
  landmarks_to_track_ = policy_.tracked_landmarks_after_stop;
  recorder_.async_position(std::move(record));
  ++stats_.async_positions;
}

RunResult RecordSession::finish(RunResult result) {
  maybe_digest(true);
  recorder_.finish(timeline_.position(), result.message,
                   result.kind == RunResult::Kind::kExitPort ? result.exit_status : -1);
  stats_.landmarks = timeline_.landmark();
  stats_.kernel_entries = kernel_entries_.total();
  stats_.net_frames = net_input_.frames();
  stats_.net_frame_bytes = net_input_.bytes();
  return result;
}

RunResult RecordSession::run() {
  machine_.kicker().bind_to_current_thread(&machine_.run_state());
  struct Unbind {
    VcpuKicker& kicker;
    ~Unbind() { kicker.unbind(); }
  } unbind{machine_.kicker()};

  for (;;) {
    if (result_) return finish(*result_);
    if (machine_.take_stop_request()) {
      // The guest ran on after the last logged position: log where it is, so
      // that the final digest is taken where replay will compute it.
      if (unlogged_progress_) {
        log_async_position();
        clock_at_async_stop();  // as replay does at every installed stop
      }
      return finish(RunResult{RunResult::Kind::kStopped, 0, "recording stopped by the user"});
    }
    try_deliver_interrupt();
    arm_kick();
    // A landmark's copy put off (no stop could follow it then) is taken now
    // if one may: the deadline or interrupt came with the landmark's delivery.
    if (watch_kernel_entries_if_a_stop_may_come() &&
        std::exchange(position_memory_sync_put_off_, false))
      sync_position_memory();
    save_resume_state_if_fresh();
    // The interrupt window is asked for this run only. Left in the run area,
    // the recorder's own runs after it (steps over a watched return, re-runs,
    // breakpoint runs) ended at once, again and again, while the guest could
    // take an interrupt: a recording under strace spun ~12,000 KVM_RUNs a
    // second stepping over an iretq to user mode (once in CI one took 1,410 s).
    machine_.run_state().request_interrupt_window = want_interrupt_window_ ? 1 : 0;
    Machine::Exit exit;
    do {
      exit = kernel_entries_.enter_guest();
    } while (exit.kind == Machine::Exit::Kind::kSpurious && !interrupt_window_opened());
    machine_.run_state().request_interrupt_window = 0;
    position_memory_sync_put_off_ = false;  // the guest ran on: too late for that copy
    want_interrupt_window_ = false;
    retry_soon_ = false;
    if (kernel_entries_.at_return(exit) && took_return_base()) {
      kick_stands_ = true;  // no resume: the kick armed before the capture stands
      continue;
    }
    const bool at_watched_return = kernel_entries_.at_watched_return(exit);
    if (at_watched_return || kernel_entries_.at_return_site(exit)) {
      const uint64_t positions_before = stats_.async_positions;
      if (at_watched_return)
        at_kernel_return();
      else
        at_return_site();
      kick_stands_ = stats_.async_positions == positions_before;
      continue;
    }
    if (exit.kind != Machine::Exit::Kind::kAsynchronous &&
        exit.kind != Machine::Exit::Kind::kSpurious)
      unlogged_stops_in_a_row_ = 0;
    switch (exit.kind) {
      case Machine::Exit::Kind::kAsynchronous:
      case Machine::Exit::Kind::kSpurious:  // the interrupt window opened
        if (exit.kind == Machine::Exit::Kind::kAsynchronous && defer_kick_in_emulated_kernel()) {
          machine_.kicker().acknowledge(&machine_.run_state());
          unlogged_progress_ = true;
          ++stats_.deferred_kicks;
        } else if (stop_can_stay_unlogged()) {
          machine_.kicker().acknowledge(&machine_.run_state());
          unlogged_progress_ = true;
          ++stats_.unlogged_stops;
          // Measured on Linux boots: a stretch re-executed without the
          // recorder's unlogged stops in it can take another path (see
          // docs/record-replay.md, "Searched positions"): not searched.
          unlogged_stop_since_stop_ = true;
          // The window only from the second such stop without a landmark in
          // between (a guest that reaches a landmark, its HLT or a PIO, within
          // the retry quantum takes the interrupt there at no cost), and only
          // when the stop it makes is cheap to log: a previous_position delta.
          // hello got a ~600 B shadow-based one when its kernel enabled
          // interrupts after a long init.
          retry_soon_ = interrupt_due();
          if (retry_soon_) cut_long_stretch();
          unlogged_stops_in_a_row_ = retry_soon_ ? unlogged_stops_in_a_row_ + 1 : 0;
          want_interrupt_window_ = unlogged_stops_in_a_row_ >= 2 && position_memory_complete_ &&
                                   position_memory_at_ == timeline_.position();
        } else if (watch_return_site() || roll_back_to_position() || keep_watching_return_site() ||
                   watch_kernel_return()) {
          machine_.kicker().acknowledge(&machine_.run_state());
          unlogged_progress_ = true;
        } else {
          // A watched return site not reached by the next kick: stop here.
          kernel_entries_.stop_watching_return_site();
          if (exit.kind == Machine::Exit::Kind::kSpurious) ++stats_.interrupt_window_stops;
          unlogged_stops_in_a_row_ = 0;
          at_async_stop(rolled_back_to_kernel_return());
        }
        break;
      case Machine::Exit::Kind::kSynchronous:
        unlogged_progress_ = false;
        timeline_.enter_landmark();
        kernel_entries_.restart();
        // Where a capture is worth its cost: save_resume_state_if_fresh.
        ++landmarks_since_stop_;
        start_position();
        // PIO or HLT from user mode (IOPL 3, ioperm) ends the kernel-only span.
        if (kernel_only_since_stop_ && policy_.searched_cpl0_instructions_per_second > 0)
          kernel_only_since_stop_ = current_cpl(machine_) == 0;
        if (kernel_entries_.waiting_for_idt())
          kernel_entries_.rearm(machine_.vcpu().get_sregs_for_mode());
        if (machine_.run_state().exit_reason == KVM_EXIT_HLT)
          at_halt();
        else
          at_landmark();
        if (stop_may_come())
          sync_position_memory();
        else
          position_memory_sync_put_off_ = true;
        stretch_started_host_ns_ = host_monotonic_ns();  // the guest resumes now
        break;
      case Machine::Exit::Kind::kTerminal:
        return finish(exit.result);
    }
  }
}

}  // namespace vmm
