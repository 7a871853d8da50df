#pragma once
// TimeTraveler's state, shared by time_traveler.cpp (opening, seeking,
// checkpoints) and time_traveler_control.cpp (the debugger's execution control).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
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

// A code breakpoint reached by running at full speed (breakpoint_search.cpp):
// the `ordinal`-th arrival at `pc` after the exact position `anchor`, within
// anchor's stretch (before the next landmark or async stop). ordinal 0: the
// hit is `anchor` itself (a landmark or async stop where rip == pc).
struct CodeHit {
  librr::Position anchor;
  uint64_t pc = 0;
  uint64_t ordinal = 0;
  kvm_regs regs{};  // at the hit, to check the resolved position
};

// A search for code breakpoints in progress; search_code() goes on from where
// the previous call stopped (at an unresolved hit inside a stretch).
struct CodeSearch {
  std::set<uint64_t> code;
  std::optional<librr::Position> limit;  // stop on reaching this (L, a) position
  // Inside a stretch run with debug registers:
  bool in_stretch = false;
  librr::Position anchor;                 // where the stretch run began (exact)
  std::vector<uint64_t> armed;            // code addresses plus the async stop's rip
  std::map<uint64_t, uint64_t> arrivals;  // per address, since `anchor`
  bool first = false;                     // nothing executed since anchor's (L, a) yet
};

struct TimeTraveler::Impl {
  TravelOptions options;
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
  void moved() { vcpu.reset(); }
  vmm::InstructionStepper& instruction_stepper();
  // Forward to the base (L, a) of `target`, restoring a checkpoint when that
  // is shorter or the only way. Throws if (L, a) does not exist.
  void reach_base(const librr::Position& base);
  // TimeTraveler::seek.
  void seek_exact(const librr::Position& target);
  const vmm::VcpuState& current_vcpu() const;
  AddressSpace current_address_space() const;

  // ---- Code breakpoints by running (breakpoint_search.cpp) ----
  // Forward from the current exact position to the first arrival at one of
  // `code`, the (L, a) position `limit` (kLimit, exact there), the end, or
  // an interrupt request (kInterrupted, at an exact position).
  // Stretches where hardware breakpoints cannot see every arrival are
  // single-stepped. A hit leaves the machine at the hit, unresolved.
  enum class SearchStop { kHit, kLimit, kEnd, kInterrupted };
  SearchStop search_code(CodeSearch& search, CodeHit& hit);
  // How to search the stretch after the current position: the addresses to
  // arm, or nullopt to single-step it; `next_stop_at_cpl3`: it ends at a
  // logged async stop at CPL3 that this host cannot stop the vCPU at.
  struct StretchPlan {
    std::optional<std::vector<uint64_t>> armed;
    bool next_stop_at_cpl3 = false;
  };
  StretchPlan plan_stretch(const std::set<uint64_t>& code, const AddressSpace& space);
  // The last arrival at one of `code` strictly before `current`, searching
  // forward from `from` with search_code() up to current's (L, a) and by
  // single steps from there. Leaves the machine anywhere after `from`.
  // `interrupted`: the interrupt check stopped it (at an exact position).
  std::optional<CodeHit> last_code_hit_between(TimeTraveler& traveler,
                                               const std::set<uint64_t>& code,
                                               const librr::Position& from,
                                               const librr::Position& current, bool& interrupted);
  // One stretch with the debug registers armed, from search.anchor on.
  SearchStop run_stretch(CodeSearch& search, CodeHit& hit);
  // Moves to the exact position of `hit` (restore, replay to its anchor,
  // single steps counting arrivals at its pc).
  void resolve(const CodeHit& hit);
  uint64_t read_rip() const;
};

}  // namespace analyzer
