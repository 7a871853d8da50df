#pragma once
// TimeTraveler's state, shared by time_traveler.cpp (opening, seeking,
// checkpoints) and time_traveler_control.cpp (the debugger's execution control).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "replay/hardware_breakpoints.h"
#include "replay/instruction_stepper.h"
#include "replay/replay_machine.h"
#include "travel/checkpoint.h"
#include "travel/time_traveler.h"

namespace analyzer {

// Swallows the guest's console: the analyzer shows state, not output.
class DiscardSerialOutput final : public vmm::SerialOutput {
 public:
  void write(uint8_t) override {}
};

// A code breakpoint reached by the breakpoint search (breakpoint_search.cpp),
// named as the search found it: exact where the stretch was single-stepped
// or the hit is a logged position, else by arrivals counted with the debug
// registers (PositionName).
struct CodeHit {
  PositionName name;
  uint64_t pc = 0;
  kvm_regs regs{};  // at the hit, to check a later exact resolution
};

// A search for code breakpoints in progress; search_code() goes on from where
// the previous call stopped (at a hit inside a stretch).
struct CodeSearch {
  std::set<uint64_t> code;               // the addresses to stop at
  std::optional<librr::Position> limit;  // stop on reaching this (L, a) position
  // Inside a stretch run with debug registers:
  bool in_stretch = false;
  librr::Position anchor;       // where the stretch run began (exact, steps 0)
  std::vector<uint64_t> armed;  // code addresses plus the async stop's rip
  // Hits are named `counted_from` plus one arrival link; `arrivals` counts
  // per address of `counted` since then (an exact counted_from's own rip
  // included, as PositionName's first link counts the base itself).
  // `counted` (armed) may hold more than `code`: addresses dropped from the
  // search since keep being counted, so names go on from the same point.
  PositionName counted_from;
  std::set<uint64_t> counted;
  std::map<uint64_t, uint64_t> arrivals;
  // The addresses counted ever since `anchor` (a subset of `counted`): their
  // hits get the short name `anchor@pc#n` even after counting restarted.
  std::set<uint64_t> counted_since_anchor;
  std::map<uint64_t, uint64_t> arrivals_since_anchor;
  bool first = false;  // nothing executed since anchor's (L, a) yet
  // A stretch that ends at a logged stop in user mode, with the kernel
  // entries the recorder counted before it (AsyncPosition::kernel_entries):
  // how many are still to come, and their addresses (also in `armed`, with
  // the code addresses when all fit). Walked by walk_towards_user_stop().
  std::optional<uint64_t> kernel_entries_left;
  std::vector<uint64_t> kernel_entries;

  // A new search for `addresses`, stopping at `stop_at` (if any).
  static CodeSearch over(std::set<uint64_t> addresses,
                         std::optional<librr::Position> stop_at = std::nullopt) {
    CodeSearch search;
    search.code = std::move(addresses);
    search.limit = stop_at;
    return search;
  }
};

// Where a traveler's time went (RR_TRAVEL_STATS=1 prints it to stderr when
// the traveler is destroyed): replay steps, debug-register runs, single
// steps, checkpoint restores and captures, each with its count and seconds.
struct TravelStats {
  struct Counter {
    uint64_t count = 0;
    double seconds = 0;
  };
  Counter advances, debug_runs, debug_exits, steps, restores, captures, resolves;
  std::string to_string() const;
};

// Adds the time from construction to destruction to a counter.
class TimedScope {
 public:
  explicit TimedScope(TravelStats::Counter& counter)
      : counter_(counter), started_(std::chrono::steady_clock::now()) {}
  ~TimedScope() {
    ++counter_.count;
    counter_.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }
  TimedScope(const TimedScope&) = delete;
  TimedScope& operator=(const TimedScope&) = delete;

 private:
  TravelStats::Counter& counter_;
  std::chrono::steady_clock::time_point started_;
};

struct TimeTraveler::Impl {
  TravelOptions options;
  TravelStats stats;
  bool print_stats = false;  // RR_TRAVEL_STATS set: every 10 s and at the end
  std::chrono::steady_clock::time_point last_stats_print;
  DiscardSerialOutput console;
  std::unique_ptr<vmm::ReplayMachine> replay;
  std::optional<vmm::InstructionStepper> stepper;  // created at the first step (runs the probe)
  std::optional<vmm::HardwareBreakpointSupport> hardware_breakpoints;  // read at first use
  CheckpointStore checkpoints;
  librr::Position position;
  librr::Position end;
  double replay_seconds = 0;  // replay work from the start to `position`'s landmark
  // The vCPU ran on past `position` (a breakpoint search stopped it inside
  // the stretch without counting instructions): the next seek restores a
  // checkpoint instead of continuing from the machine as it is.
  bool machine_past_position = false;
  // Set when the machine stands at a breakpoint hit named by arrivals:
  // `search` is the search that got there and can go on from it; `hit_regs`
  // are checked when the exact form is made. With machine_past_position
  // the exact form is not known yet; without, `position` is it (make_exact
  // ran). Any other move (a step, a replay step, a restore) drops the name.
  std::optional<PositionName> hit_name;
  kvm_regs hit_regs{};
  CodeSearch search;
  std::optional<BufferPhysicalMemory> memory;
  mutable std::optional<vmm::VcpuState> vcpu;  // of `position`, read on demand
  std::chrono::steady_clock::time_point last_progress;
  std::function<bool()> interrupt_check;
  std::chrono::steady_clock::time_point last_interrupt_check;
  // The interrupt check, asked at most every few milliseconds.
  bool interrupt_requested();

  // One replay step from a (L, a) position or mid-steps; takes checkpoints.
  // Returns false at the end of the recording.
  bool advance();
  // After replay work reached a new (L, a) position: takes a checkpoint when
  // one interval of work has passed, reports progress.
  void reached_base(std::chrono::steady_clock::time_point work_started);
  // One instruction; updates `position`. False at the end of the recording.
  bool step_once();
  void restore(const Checkpoint& checkpoint);
  // The machine is at a hit named by arrivals: single-step to it from its
  // base to learn its exact position (checked against the hit's registers),
  // keeping the name and the search that can go on from it.
  void make_exact();
  void moved() { vcpu.reset(); }
  vmm::InstructionStepper& instruction_stepper();
  // Forward to the base (L, a) of `target`, restoring a checkpoint when that
  // is shorter or the only way. Throws if (L, a) does not exist.
  void reach_base(const librr::Position& base);
  bool next_stop_counts_from_its_position() const;
  // TimeTraveler::seek.
  void seek_exact(const librr::Position& target);
  // TimeTraveler::seek_named.
  void seek_named(const PositionName& target);
  const vmm::VcpuState& current_vcpu() const;
  AddressSpace current_address_space() const;

  // ---- Code breakpoints by running (breakpoint_search.cpp) ----
  // Forward from the current position (exact, or the hit `search` stopped
  // at) with `search` to the next arrival at one of search.code, the (L, a) position
  // search.limit (kLimit, exact there), the end, or an interrupt request
  // (kInterrupted, at an exact position). Stretches where hardware
  // breakpoints cannot see every arrival are single-stepped. A hit found
  // with the debug registers leaves the machine there, named by arrivals
  // (hit_name).
  enum class SearchStop { kHit, kLimit, kEnd, kInterrupted };
  SearchStop search_code(CodeHit& hit);
  // Continues `search` (Impl::search) from the hit the machine stands at
  // with another set of addresses: counting starts afresh after the hit, or
  // the hit is made exact first where the new set cannot be armed.
  void rearm_search(const std::set<uint64_t>& code);
  // How to search the stretch after the current position: the addresses to
  // arm, or nullopt to single-step it; `next_stop_at_cpl3`: it ends at a
  // logged async stop at CPL3 that this host cannot stop the vCPU at.
  struct StretchPlan {
    std::optional<std::vector<uint64_t>> armed;
    bool next_stop_at_cpl3 = false;
    // Set when the recorder counted the kernel entries before that stop: a
    // walk, not a plain run. `armed` holds the entry addresses, plus the
    // code addresses if all fit in the debug registers.
    std::optional<uint64_t> kernel_entries_before_stop;
    std::vector<uint64_t> kernel_entries;
  };
  StretchPlan plan_stretch(const std::set<uint64_t>& code, const AddressSpace& space);
  // Starts the stretch `plan` arms (plan.armed set) at the current exact position.
  void begin_stretch(StretchPlan plan, uint64_t rip);
  // The last arrival at one of `code` strictly before `current`, searching
  // forward from `from` with search_code() up to current's (L, a) and by
  // single steps from there. Leaves the machine anywhere after `from`.
  // `interrupted`: the interrupt check stopped it (at an exact position).
  std::optional<CodeHit> last_code_hit_between(TimeTraveler& traveler,
                                               const std::set<uint64_t>& code,
                                               const librr::Position& from,
                                               const librr::Position& current, bool& interrupted);
  // The last arrival at one of `code` before the hit `current` (named by
  // arrivals from its base) within its stretch, by searching the stretch
  // again; nullopt if there is none between the base and it.
  std::optional<CodeHit> last_code_hit_before_named(TimeTraveler& traveler,
                                                    const std::set<uint64_t>& code,
                                                    const PositionName& current, bool& interrupted);
  // One stretch with the debug registers armed, from search.anchor on.
  SearchStop run_stretch(CodeHit& hit);
  // One move of a stretch that ends at a stop in user mode whose kernel
  // entries were counted: a single step in kernel code, a run with the
  // entries armed through user code, or, once the last entry's kernel code
  // returns to user mode, installing the stop.
  vmm::ReplaySession::InstructionOutcome walk_towards_user_stop();
  // After a move of that walk: one entry less to come if it arrived at one.
  void count_kernel_entry(uint64_t rip);
  // The kernel entries counted before the async stop logged next after
  // `position`'s (L, a), if that is the log's next record and has them.
  const librr::CodeArrivals* kernel_entries_of_next_stop() const;
  // The kernel entry among `entries` that a move from `from` to `to` arrived
  // at, if any: `to` itself, or, after a step, the entry whose first
  // instruction the step ran too (user_stop_walk.cpp).
  std::optional<uint64_t> entry_arrived_at(std::span<const uint64_t> entries, uint64_t from,
                                           uint64_t to, bool stepped) const;
  // Arrivals at those entries from (L, a) up to the current exact position
  // (its own rip included), kept by step_once(): a walk that starts at a
  // mid-step position knows how many of the counted entries lie behind it.
  uint64_t kernel_entries_stepped = 0;
  // Moves to `hit` (found by a search before; the machine may be anywhere).
  void land_on(const CodeHit& hit);
  // From the current position to the `ordinal`-th arrival at `pc` (the
  // current state counting when `count_current`), by debug-register runs
  // in stretches the search would run so, else by single steps. Throws
  // PositionPastEnd at the end of the recording.
  void run_to_arrival(uint64_t pc, uint64_t ordinal, bool count_current,
                      const PositionName& name_so_far);
  // Single steps from `name`'s base to it, counting arrivals (the exact
  // form of a named position).
  void step_to_arrivals(const PositionName& name);
  uint64_t read_rip() const;
};

}  // namespace analyzer
