#pragma once
// Counts, during record, how often the vCPU enters the guest kernel through
// the exceptions user code raises (#UD, #GP, #PF: a test-guest system call
// is a ud2), with the handlers' first instructions in the debug
// registers. The count goes with each asynchronous stop in user mode
// (librr::AsyncPosition::kernel_entries).
//
// Why: replay installs such a stop without executing the stretch before it,
// and an analyzer that does execute it (breakpoints, the timeline) cannot
// stop native user code at the stop on hosts that do not honour debug
// registers at CPL3 (kvm_pvm), so it could not tell whether kernel code it
// meets after the stretch returned to user mode still comes before the stop.
// With the count it can: the stop follows exactly that many entries
// (docs/record-replay.md, "Kernel entries before a stop in user mode";
// docs/analyzer.md, "Stops").
//
// Only where it is needed and possible: the host honours debug registers at
// CPL0 (where the handlers run) but not at CPL3 (`rr-vmm probe`); off with
// `record --no-kernel-entries` (a guest whose kernel uses the debug registers
// itself loses them while they are armed here).
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "librr/events.h"
#include "machine/machine.h"

namespace vmm {

// Whether counting helps and works on this host (the probe's debug-register
// results: honoured at CPL0, not at CPL3).
bool kernel_entry_counting_useful();

class KernelEntryCounter {
 public:
  KernelEntryCounter(Machine& machine, bool enabled);

  // At a position (the count restarts there): arms the handlers named by
  // the guest's IDT now (again, if they are those armed: other users of the
  // debug registers clear them). Does nothing before the guest has an IDT
  // and a TSS.
  void rearm(const kvm_sregs& sregs);
  // Whether counting should, but does not yet, arm anything: the recorder
  // then tries rearm() at every landmark, so that counting starts as soon
  // as the kernel has its IDT (before its first user task, not at its
  // first interrupt), and afterwards only where it reads sregs anyway.
  bool waiting_for_idt() const { return enabled_ && armed_.empty(); }
  // Machine::enter_guest() that counts and runs on through the armed
  // entries: each is a DEBUG exit, then one single step over the entry's
  // instruction with the debug registers off (kvm_pvm ignores RFLAGS.RF, so
  // resuming there would stop again). Returns any other exit. A stop that
  // interrupts that step leaves it pending for the next call, unless a
  // position is logged there first (restart()).
  Machine::Exit enter_guest();
  // The arrivals since the last restart, if entries are armed and were
  // watched all the while (set_unwatched).
  std::optional<librr::CodeArrivals> arrivals() const;
  // While no asynchronous stop can end the guest's run (no kick armed, no
  // input source that could kick), nothing needs the count: the run ends at
  // a landmark, where counting restarts. The caller then leaves the debug
  // registers off: on kvm_pvm a KVM_RUN with them armed costs ~13-16 us
  // more (the test guests' ~145 boot landmarks before they set their timer,
  // ~5,900 runs of a Linux boot). A stretch that ran
  // unwatched has no count until the next restart() (a stop there, the
  // user's SIGINT, is logged without one), and may have run user code.
  void set_unwatched(bool unwatched);
  // At a position: counting starts again (and watching a return stops). An
  // arrival at the position's own rip counts (resuming there stops at once),
  // as analyzers count it.
  void restart();
  uint64_t total() const { return total_; }
  // Host time (CLOCK_MONOTONIC) of the last counted arrival.
  uint64_t last_arrival_host_ns() const { return last_arrival_host_ns_; }
  // Of those, the arrivals not known to come from kernel mode (the saved
  // frame's CS says user mode, or the frame does not read): a stretch with
  // none stayed in kernel mode (a Linux boot's int3 while it patches its
  // code, a page fault in the kernel do not end it).
  uint64_t total_not_from_kernel() const { return total_not_from_kernel_; }

  // ---- Kernel-return stops (kernel_return_stop.h) ----
  // From an arrival from user mode at which `wanted()` is true, the counter
  // also watches the kernel's return to user mode, with the fourth debug
  // register on the return instruction (an iretq found in the handlers' code
  // when they are armed: return_rip()), and enter_guest() returns the DEBUG
  // exit there (at_watched_return()).
  void watch_returns_when(std::function<bool()> wanted) { wanted_ = std::move(wanted); }
  bool at_watched_return(const Machine::Exit& exit) const;
  std::optional<uint64_t> return_rip() const { return return_rip_; }
  void stop_watching_return();
  // The caller stands on the watched return and lets the guest go on (a
  // return to kernel mode): the next enter_guest() steps over it first.
  void step_over_here() { step_pending_ = true; }
  // At a stop in kernel code (a kick): watch the return from here, if the
  // kernel was entered from user mode at the last arrival from there and has
  // not returned since (the frame that arrival saved is still on the kernel
  // stack, unchanged). For a Linux page fault that outlasts the kick. True if
  // it watches (docs/record-replay.md, "Kernel-return stops").
  bool watch_return_from_kernel(const kvm_sregs& sregs);
  bool watching_return() const { return watching_; }

  // ---- The memory as of the return to user mode (record_return_to_user_delta.cpp) ----
  // From now until the next position, the first return to user mode after
  // the position and after each arrival since is a DEBUG exit that
  // enter_guest() returns (at_return()), with the fourth debug register on
  // the return instruction while no return site is watched. The caller
  // takes what it needs there and calls return_captured() (the register is
  // freed, the iretq runs as usual), or steps over a return to kernel mode
  // with step_over_here().
  void capture_returns_from_here();
  bool capturing_return() const { return capture_pending_; }
  bool at_return(const Machine::Exit& exit) const;
  void return_captured();

  // ---- Return-site stops (return_site_stop.h) ----
  // The fourth debug register on `address` until the next position or
  // stop_watching_return_site(); enter_guest() returns its DEBUG exits
  // (at_return_site()). False, and nothing armed, while a kernel return is
  // watched (the one register left is taken).
  bool watch_return_site(uint64_t address);
  bool watching_return_site() const { return return_site_.has_value(); }
  std::optional<uint64_t> return_site() const { return return_site_; }
  bool at_return_site(const Machine::Exit& exit) const;
  void stop_watching_return_site();

 private:
  Machine& machine_;
  bool enabled_;
  bool at_armed_entry(const Machine::Exit& exit) const;
  Machine::Exit step_over_entry();
  void arm();  // the entries, and the watched return
  // The frame an arrival's exception saved, read once per arrival.
  struct ArrivalFrame {
    uint64_t frame_address = 0;
    std::vector<uint8_t> frame;  // InterruptFrame::kBytes
    bool from_user_mode() const;
    bool from_kernel_mode() const;
  };
  std::optional<ArrivalFrame> arrival_frame() const;
  void note_arrival(std::optional<ArrivalFrame> frame);

  std::vector<uint64_t> armed_;
  std::vector<uint8_t> armed_vectors_;  // the exception vector of each armed entry
  bool step_pending_ = false;           // standing on an entry already counted
  uint32_t count_ = 0;
  uint64_t total_ = 0;
  uint64_t last_arrival_host_ns_ = 0;
  uint64_t total_not_from_kernel_ = 0;
  std::function<bool()> wanted_;
  std::optional<uint64_t> return_rip_;  // the kernel's iretq to user mode (find_iretq_after)
  bool watching_ = false;
  bool capturing_ = false;        // capture_returns_from_here() until the next position
  bool capture_pending_ = false;  // the next return to user mode is wanted
  bool disarm_pending_ = false;   // restart() freed the fourth register: arm() before running
  bool unwatched_ = false;        // set_unwatched(true): nothing armed
  bool unwatched_since_restart_ = false;
  std::optional<ArrivalFrame>
      last_user_entry_;  // kept across positions: the kernel may outlast them
  std::optional<uint64_t> return_site_;
};

}  // namespace vmm
