#pragma once
// TimeTraveler's state, shared by time_traveler.cpp (opening, seeking,
// checkpoints) and time_traveler_control.cpp (the debugger's execution control).
#include <chrono>
#include <memory>
#include <optional>

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

struct TimeTraveler::Impl {
  TravelOptions options;
  DiscardSerialOutput console;
  std::unique_ptr<vmm::ReplayMachine> replay;
  std::optional<vmm::InstructionStepper> stepper;  // created at the first step (runs the probe)
  CheckpointStore checkpoints;
  librr::Position position;
  librr::Position end;
  double replay_seconds = 0;  // replay work from the start to `position`'s landmark
  std::optional<BufferPhysicalMemory> memory;
  mutable std::optional<vmm::VcpuState> vcpu;  // of `position`, read on demand
  std::chrono::steady_clock::time_point last_progress;

  // One replay step from a (L, a) position or mid-steps; takes checkpoints.
  // Returns false at the end of the recording.
  bool advance();
  // One instruction; updates `position`. False at the end of the recording.
  bool step_once();
  void restore(const Checkpoint& checkpoint);
  void moved() { vcpu.reset(); }
  vmm::InstructionStepper& instruction_stepper();
  // Forward to the base (L, a) of `target`, restoring a checkpoint when that
  // is shorter or the only way. Throws if (L, a) does not exist.
  void reach_base(const librr::Position& base);
  const vmm::VcpuState& current_vcpu() const;
  uint64_t read_rip() const;
};

}  // namespace analyzer
