#include "replay/kernel_entry_counter.h"

#include <algorithm>
#include <utility>

#include "clock/host_clock.h"
#include "librr/error.h"
#include "machine/vcpu_state.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"
#include "replay/kernel_return_stop.h"

namespace vmm {
namespace {

// The exceptions user code raises in practice: ud2 (the test guests' system
// calls), a protection fault, a page fault. Three of the four debug
// registers, so that an analyzer walking to a stop in user mode can arm a
// breakpoint beside them and run kernel code at full speed; an entry
// through any other vector (int3 included) is not counted.
constexpr uint8_t kEntryVectors[] = {6, 13, 14};

// How far after an entry's handler its return to user mode is looked for.
constexpr uint64_t kReturnScanBytes = 4096;

}  // namespace

bool kernel_entry_counting_useful() {
  const HardwareBreakpointSupport support = HardwareBreakpointSupport::from_probe();
  return support.honoured_at_cpl0 && !support.honoured_at_cpl3;
}

KernelEntryCounter::KernelEntryCounter(Machine& machine, bool enabled)
    : machine_(machine), enabled_(enabled) {}

void KernelEntryCounter::rearm(const kvm_sregs& sregs) {
  if (!enabled_) return;
  std::vector<uint64_t> entries;
  std::vector<uint8_t> vectors;
  try {
    for (const uint8_t vector : kEntryVectors) {
      const uint64_t entry = GuestHandler::for_vector(machine_, sregs, vector).entry;
      if (entry != 0 && std::find(entries.begin(), entries.end(), entry) == entries.end()) {
        entries.push_back(entry);
        vectors.push_back(vector);
      }
    }
  } catch (const librr::Error&) {
    entries.clear();  // no IDT or TSS yet (or not mapped): no user mode either
    vectors.clear();
  }
  // The same entries are armed again all the same: the recorder's own
  // re-runs of a stretch (searched_by_rerun, delta_from_return_to_user) arm
  // debug registers of their own and clear them all when done. Until
  // 2026-11-27 nothing armed the entries again after one: a Linux boot
  // counted no kernel entry after its first re-run search.
  if (entries == armed_) return arm();
  armed_ = std::move(entries);
  armed_vectors_ = std::move(vectors);
  watching_ = false;
  return_rip_.reset();
  for (const uint64_t entry : armed_)
    if (!return_rip_) return_rip_ = find_iretq_after(machine_, sregs, entry, kReturnScanBytes);
  arm();
}

void KernelEntryCounter::arm() {
  disarm_pending_ = false;
  if (unwatched_) return arm_hardware_breakpoints(machine_, {});
  std::vector<uint64_t> addresses = armed_;
  if ((watching_ || capture_pending_) && return_rip_ && !return_site_ &&
      addresses.size() < kHardwareBreakpointSlots)
    addresses.push_back(*return_rip_);
  if (return_site_ && addresses.size() < kHardwareBreakpointSlots)
    addresses.push_back(*return_site_);
  arm_hardware_breakpoints(machine_, addresses);
}

void KernelEntryCounter::set_unwatched(bool unwatched) {
  if (!enabled_ || unwatched == unwatched_) return;
  unwatched_ = unwatched;
  unwatched_since_restart_ = unwatched_since_restart_ || unwatched;
  arm();
}

void KernelEntryCounter::restart() {
  count_ = 0;
  unwatched_since_restart_ = unwatched_;
  step_pending_ = false;
  capturing_ = false;
  // The fourth register is freed before the guest runs next, not now: a
  // capture (capture_returns_from_here) usually wants it again at once.
  disarm_pending_ = disarm_pending_ || capture_pending_ || watching_ || return_site_;
  capture_pending_ = false;
  watching_ = false;
  return_site_.reset();
}

void KernelEntryCounter::capture_returns_from_here() {
  if (!enabled_ || !return_rip_ || capturing_) return;
  capturing_ = true;
  capture_pending_ = true;
  arm();
}

bool KernelEntryCounter::at_return(const Machine::Exit& exit) const {
  return (capture_pending_ || watching_) && return_rip_ && !return_site_ &&
         stopped_at_one_of(machine_, exit, {&*return_rip_, 1});
}

void KernelEntryCounter::return_captured() {
  if (!std::exchange(capture_pending_, false) || watching_) return;
  arm();
}

bool KernelEntryCounter::watch_return_site(uint64_t address) {
  if (watching_ || armed_.size() >= kHardwareBreakpointSlots) return false;
  return_site_ = address;
  arm();
  return true;
}

bool KernelEntryCounter::at_return_site(const Machine::Exit& exit) const {
  return return_site_ && stopped_at_one_of(machine_, exit, {&*return_site_, 1});
}

void KernelEntryCounter::stop_watching_return_site() {
  if (!return_site_) return;
  return_site_.reset();
  arm();
}

void KernelEntryCounter::stop_watching_return() {
  if (!watching_) return;
  watching_ = false;
  arm();
}

bool KernelEntryCounter::at_watched_return(const Machine::Exit& exit) const {
  return watching_ && at_return(exit);
}

// At an arrival: from user mode, it is the kernel invocation a later stop
// in kernel code may wait out (watch_return_from_kernel); with a return
// wanted, watch the return now (the step over the entry arms it). Only from
// user mode: the return that follows an entry from kernel code (a Linux
// boot's page faults) goes back there.
void KernelEntryCounter::note_arrival(std::optional<ArrivalFrame> frame) {
  if (!wanted_ || !return_rip_ || !frame || !frame->from_user_mode()) return;
  last_user_entry_ = std::move(frame);
  if (watching_ || return_site_ || armed_.size() >= kHardwareBreakpointSlots || !wanted_()) return;
  watching_ = true;
}

bool KernelEntryCounter::watch_return_from_kernel(const kvm_sregs& sregs) {
  if (watching_ || return_site_ || !return_rip_ || !last_user_entry_ ||
      armed_.size() >= kHardwareBreakpointSlots || !in_64_bit_kernel_mode(sregs))
    return false;
  try {
    if (read_guest_virtual(machine_, sregs, last_user_entry_->frame_address,
                           InterruptFrame::kBytes) != last_user_entry_->frame)
      return false;
  } catch (const librr::Error&) {
    return false;
  }
  watching_ = true;
  arm();
  return true;
}

// At an arrival: the frame the exception saved (after the error code #GP
// and #PF push), where its CS tells the mode it came from; nullopt when it
// does not read.
std::optional<KernelEntryCounter::ArrivalFrame> KernelEntryCounter::arrival_frame() const {
  const kvm_regs regs = machine_.vcpu().get_regs();
  const auto at = std::find(armed_.begin(), armed_.end(), regs.rip);
  if (at == armed_.end()) return std::nullopt;
  const uint8_t vector = armed_vectors_[static_cast<size_t>(at - armed_.begin())];
  try {
    ArrivalFrame arrival{regs.rsp + error_code_bytes(vector), {}};
    arrival.frame = read_guest_virtual(machine_, machine_.vcpu().get_sregs_for_mode(),
                                       arrival.frame_address, InterruptFrame::kBytes);
    return arrival;
  } catch (const librr::Error&) {
    return std::nullopt;
  }
}

bool KernelEntryCounter::ArrivalFrame::from_user_mode() const {
  return (InterruptFrame::parse(frame).cs & 3) == 3;
}

bool KernelEntryCounter::ArrivalFrame::from_kernel_mode() const {
  return (InterruptFrame::parse(frame).cs & 3) == 0;
}

bool KernelEntryCounter::at_armed_entry(const Machine::Exit& exit) const {
  return stopped_at_one_of(machine_, exit, armed_);
}

// No TrapFlagTraces here (InstructionStepper's clean-up after a step): the
// step runs a handler's first instruction at CPL0, where the emulator's pushf
// stores the guest's own flags, and no event is delivered during it (record
// injects interrupts only at positions, which come before a resume).
// One set_guest_debug before and one after: the step's setting is replaced
// by the entries' directly. A throw from enter_guest() ends the recording,
// so nothing needs re-arming then.
Machine::Exit KernelEntryCounter::step_over_entry() {
  arm_hardware_breakpoints(machine_, {}, /*single_step=*/true);
  const Machine::Exit exit = machine_.enter_guest();
  arm();
  return exit;
}

Machine::Exit KernelEntryCounter::enter_guest() {
  for (;;) {
    if (step_pending_) {
      const Machine::Exit step = step_over_entry();
      const bool stepped = is_debug_exit(machine_, step);
      if (stepped || step.kind == Machine::Exit::Kind::kSynchronous) step_pending_ = false;
      if (!stepped) return step;  // a landmark, a stop or an error: the caller's
    }
    if (disarm_pending_) arm();
    const Machine::Exit exit = machine_.enter_guest();
    if (!at_armed_entry(exit)) return exit;
    ++count_;
    ++total_;
    // The return after this entry is wanted: the step over it arms it.
    if (capturing_) capture_pending_ = true;
    last_arrival_host_ns_ = host_monotonic_ns();
    std::optional<ArrivalFrame> frame = arrival_frame();
    if (!frame || !frame->from_kernel_mode()) ++total_not_from_kernel_;
    step_pending_ = true;
    note_arrival(std::move(frame));
  }
}

std::optional<librr::CodeArrivals> KernelEntryCounter::arrivals() const {
  if (armed_.empty() || unwatched_since_restart_) return std::nullopt;
  return librr::CodeArrivals{armed_, count_};
}

}  // namespace vmm
