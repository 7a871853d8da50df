#pragma once
// TimeTraveler: one replay of a recording that can be moved to any position,
// forward by replaying and backward through checkpoints (rr's ReplayTimeline).
// It replays with rr-vmm's own engine (vmm::ReplaySession), so what the
// analyzer shows is what the recorded machine did. The debugger
// (gdb/gdb_server.h) and the inspection commands drive it; nothing else in
// the analyzer creates replay machines.
//
// Positions are exact: librr::Position{landmark, async_seq, steps}, where
// steps counts single-stepped instructions after the landmark (or after the
// async stop). docs/analyzer.md describes how each kind of position is
// reached and what it costs.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/position.h"
#include "memory/address_space.h"
#include "memory/physical_memory.h"

namespace vmm {
struct VcpuState;
}

namespace analyzer {

struct TravelOptions {
  std::optional<librr::Key> key;  // of a MAC'd or encrypted recording
  bool force = false;             // replay on another CPU or device-model version
  // Checkpoints taken automatically while replaying forward are kept within
  // this many bytes (guest RAM copies dominate); the oldest-but-one spacing is
  // thinned first, so seek cost stays at most one checkpoint interval.
  // 0 keeps only the checkpoint at the start (every backward seek then
  // replays from the beginning, like a plain `rr-vmm replay`).
  uint64_t checkpoint_memory_budget = 1ull << 30;
  // A checkpoint is taken after this much replay work since the previous one.
  double checkpoint_interval_seconds = 0.25;
  // Called with a fraction in [0, 1] during long replays (may be empty).
  std::function<void(double fraction)> progress;
  // Warnings (replaying on another host with `force`); may be empty.
  std::function<void(const std::string&)> warn;
};

// A position the user asked for lies after the end of the recording. The
// message says where the recording ends.
class PositionPastEnd : public librr::Error {
 public:
  using librr::Error::Error;
};

// Guest-virtual addresses (the debugger's view).
struct Watchpoint {
  uint64_t address = 0;
  uint64_t length = 0;
};
struct Breakpoints {
  std::set<uint64_t> code;
  std::vector<Watchpoint> writes;
};

// One link of a position named by code arrivals (PositionName).
struct PcArrival {
  uint64_t pc = 0;
  uint64_t ordinal = 1;  // counting from 1
  bool operator==(const PcArrival&) const = default;
};

// A position as the traveler names it at no extra cost: an exact
// librr::Position, optionally followed by arrivals at code addresses, e.g.
// `L212+a1@0x101060#3` or `L212@0x101060#3@0x1010a0#1`. The first link is
// the ordinal-th state at or after `base` where rip == pc; each further link
// the ordinal-th such state strictly after the previous link's. A code
// breakpoint hit found with the debug registers is named this way (its step
// count would take single steps to learn); seek() reaches such a name with
// the same debug-register run, and position() works out the exact form
// only when asked (docs/analyzer.md, "Positions").
struct PositionName {
  librr::Position base;
  std::vector<PcArrival> arrivals;

  PositionName() = default;
  PositionName(const librr::Position& exact) : base(exact) {}  // NOLINT: an exact name
  PositionName(const librr::Position& from, std::vector<PcArrival> links)
      : base(from), arrivals(std::move(links)) {}
  bool is_exact() const { return arrivals.empty(); }
  // `base` then `@0x...#n` per link.
  std::string to_string() const;
  bool operator==(const PositionName&) const = default;
};

struct StopReason {
  enum class Kind {
    kStep,         // step_instruction/reverse_step_instruction finished
    kBreakpoint,   // rip == address, about to execute it
    kWatchpoint,   // the instruction before this position wrote [address, +length)
    kStart,        // reverse execution reached the start of the recording
    kEnd,          // forward execution reached the end of the recording
    kInterrupted,  // the interrupt check said stop (gdb's Ctrl-C); an exact position
  };
  Kind kind = Kind::kStep;
  uint64_t address = 0;
};

class TimeTraveler {
 public:
  // Opens and checks the recording (snapshot checksum, host compatibility
  // unless options.force) and positions the machine at the start. Throws
  // librr::Error with the cause (missing recording, damaged snapshot...).
  TimeTraveler(const std::filesystem::path& recording, TravelOptions options);
  ~TimeTraveler();
  TimeTraveler(const TimeTraveler&) = delete;
  TimeTraveler& operator=(const TimeTraveler&) = delete;

  // The exact position. At a breakpoint hit found with the debug registers
  // (here() names it by arrivals) this costs single steps the first time:
  // restore the checkpoint before it, replay to its base, step to it.
  librr::Position position() const;
  // The current position's name, free of cost: the exact position, or
  // arrivals at code addresses after one (see PositionName).
  PositionName here() const;
  // The last position of the recording (its EndOfRecording, or the last
  // record of a recording cut short).
  librr::Position end() const;

  // Moves the machine to `target`. Throws PositionPastEnd past the end and
  // librr::Divergence if the replay diverges on the way.
  void seek(const librr::Position& target);
  // Moves the machine to a named position: exact, or arrivals counted with
  // the debug registers where the host honours them at that address (as the
  // breakpoint search does, so a name continue_forward gave leads to the
  // same registers), else by single steps. Throws PositionPastEnd when the
  // arrivals do not all happen before the end (the message says how many did).
  void seek_named(const PositionName& target);

  // State at the current position.
  const vmm::VcpuState& vcpu() const;
  const PhysicalMemory& memory() const;
  // The current address space (CR3, paging per CR0.PG).
  AddressSpace address_space() const;

  // Checkpoints held now and the memory they keep (for reports, bench).
  size_t checkpoint_count() const;
  uint64_t checkpoint_bytes() const;

  // Debugger execution control. Forward execution stops at a code
  // breakpoint before executing it, after an instruction that wrote a
  // watched range, or at the end. Reverse execution finds the last such
  // stop before the current position (replay from the checkpoint before it).
  // Code breakpoints run at full speed with the debug registers where the
  // host allows it (up to 4 addresses, CPL0 on kvm_pvm), else by single steps;
  // write watchpoints always by single steps (docs/analyzer.md, "Stops").
  // step_instruction across a landmark or a logged
  // asynchronous stop lands on that position (steps = 0).
  StopReason step_instruction();
  // `limit`: stop (kEnd) on reaching this (L, a) position without a hit
  // before it; nullopt: the end of the recording.
  StopReason continue_forward(const Breakpoints& breakpoints,
                              const std::optional<librr::Position>& limit = std::nullopt);
  StopReason reverse_step_instruction();
  StopReason reverse_continue(const Breakpoints& breakpoints);

  // Asked now and then while continue_forward/reverse_continue run (at
  // positions where they can stop exactly, a few thousand times a second at
  // most); when it returns true they stop there with kInterrupted. Empty: never.
  void set_interrupt_check(std::function<bool()> check);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace analyzer
