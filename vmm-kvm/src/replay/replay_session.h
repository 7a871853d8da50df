#pragma once
// Re-runs a recorded machine from its initial snapshot, feeding it the log:
// clock samples, serial input and asynchronous positions at their positions,
// checking every interrupt delivery and state digest on the way. Mirrors
// RecordSession step for step (docs/record-replay.md).
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "clock/virtual_clock.h"
#include "librr/replayer.h"
#include "machine/machine.h"
#include "replay/instruction_stepper.h"
#include "replay/kernel_return_stop.h"
#include "replay/memory_shadow.h"
#include "replay/replay_rules.h"
#include "replay/searched_position.h"
#include "replay/session_common.h"

namespace vmm {

struct ReplayOutcome {
  bool faithful = false;       // reached the recording's end with every check passing
  bool log_terminated = true;  // false: the recording was cut short (kill -9), replayed to its end
  librr::Position end;         // where replay stopped
  std::string message;         // the divergence, or how the recording ended
  int guest_exit_status = -1;
  uint64_t async_positions = 0;
  uint64_t searched_positions = 0;   // of those, found by a breakpoint search (not installed)
  uint64_t kernel_return_stops = 0;  // of those, reached at a kernel return (not installed)
  uint64_t search_hits = 0;          // breakpoint hits the searches took
  uint64_t interrupts = 0;
  uint64_t digests_checked = 0;
  uint64_t net_frames = 0;  // logged frames delivered to virtio-net
};

class ReplaySession {
 public:
  // The machine has been restored from the recording's initial snapshot and
  // uses `clock`; its serial input is a ReplaySerialInput on `replayer` and `timeline`.
  // `rules`: the recording's (ReplayRules::from_manifest).
  ReplaySession(Machine& machine, VirtualClock& clock, librr::Replayer& replayer,
                Timeline& timeline, ReplayRules rules = ReplayRules::current());
  // Never throws librr::Divergence: a divergence is reported in the outcome.
  ReplayOutcome run();

  // ---- Driving the replay piecewise (the analyzer's TimeTraveler) ----
  // One step of run()'s loop: installs the next async position, or delivers
  // what is logged at the current position and runs the guest to the next
  // landmark and handles it. Returns false once the recording's end is
  // reached (then outcome() says how). Throws librr::Divergence.
  // `delivered_already`: the position's interrupt was delivered by a first
  // step_instruction(), so the guest just runs on to the next landmark.
  bool advance(bool delivered_already = false);
  bool done() const { return done_; }
  const ReplayOutcome& outcome() const { return outcome_; }

  // ---- Single instructions (analysis positions: librr::Position::steps) ----
  enum class InstructionOutcome {
    kStepped,           // one instruction executed; still before the next logged position
    kReachedAsyncStop,  // the registers matched the next logged async stop: installed it
    kReachedLandmark,   // the instruction made the next synchronous exit: handled it
    kEnded,             // the recording ends here
    kDebugExit,         // run_to_debug_exit(): a DEBUG exit somewhere before the next position
  };
  // Executes one guest instruction after the current position. With
  // `first_since_position` (steps == 0), what the log delivers at the
  // position (an interrupt) is delivered first, exactly as advance() does;
  // afterwards nothing is injected. The stretch before a logged async stop is
  // not re-executed by advance(), so stepping detects the stop by comparing
  // the registers with the recorded ones (registers alone: a loop that only
  // changes memory matches at its first pass; installing the stop then makes
  // the state exact anyway). Throws librr::Divergence.
  InstructionOutcome step_instruction(InstructionStepper& stepper, bool first_since_position);
  // Like step_instruction(), but runs the guest at full speed until its next
  // exit, with debug registers the caller armed (hardware_breakpoints.h). A
  // DEBUG exit returns kDebugExit with the timeline unchanged: the vCPU
  // stands somewhere between the current position and the next one. Unlike
  // advance(), the stretch before a logged async stop is executed, not
  // skipped: the stop is recognised by its registers at the start of each
  // call, so the caller must stop the vCPU at the stop's rip (a breakpoint
  // there) and call again. Throws librr::Divergence.
  InstructionOutcome run_to_debug_exit(bool first_since_position);
  // An analyzer walking the stretch before a kernel-return stop
  // (kernel_return_stop.h) stands on the kernel's iretq to user mode after
  // the last kernel entry the recorder counted: steps over it and enters
  // the stop. False (nothing done) if the next stop is of another kind.
  // Throws librr::Divergence if the vCPU is not where that stop says.
  bool enter_kernel_return_stop_here();

  // The memory shadow and the serial bytes taken but not yet consumed are
  // session state a checkpoint must save and restore with the machine.
  std::span<uint8_t> shadow_bytes() { return shadow_.bytes(); }
  // Restoring a checkpoint: the session continues from a position it did not reach by itself.
  void resume_after_restore() {
    done_ = false;
    outcome_ = {};
  }

 private:
  void step(bool delivered_already = false);
  // step_instruction()/run_to_debug_exit() before executing: delivery at the
  // position, end of the log, a matching async stop. A value ends the call.
  std::optional<InstructionOutcome> before_executing(bool first_since_position);
  // After an instruction made the next synchronous exit.
  InstructionOutcome handle_landmark_reached();
  void check_interrupt_delivery();
  const librr::AsyncPosition* next_async_stop();
  void enter_async_stop(const librr::AsyncPosition& async);
  bool install_async_position_if_next();
  void reach_return_to_user_base(const librr::AsyncPosition& async,
                                 const librr::MemoryDelta& delta);
  void keep_return_to_user_base_if_here(const librr::AsyncPosition& async);
  [[noreturn]] void throw_kernel_return_missed(KernelReturnSearch result, const std::string& stop);
  bool reach_searched_position_if_next();
  bool reach_kernel_return_if_next();
  void arrive_at_kernel_return(const librr::AsyncPosition& async);
  [[noreturn]] void throw_reexecution_timed_out(const std::string& stop);
  const librr::AsyncPosition* at_next_async_stop();
  void at_landmark();
  void at_halt();
  // Whether a logged clock sample was applied.
  bool apply_clock_if_next(std::optional<uint64_t> before_deadline);
  void clock_at_async_stop();
  void check_digest_if_next();
  bool end_if_next();
  const librr::Event* next_at_position();

  Machine& machine_;
  VirtualClock& clock_;
  librr::Replayer& replayer_;
  Timeline& timeline_;
  ReplayRules rules_;
  MemoryShadow shadow_;
  PagesWrittenSincePosition written_{machine_};
  // The position after which an analyzer last executed instructions
  // (step_instruction, run_to_debug_exit): the vCPU is not at it any more.
  std::optional<librr::Position> stepped_at_;
  ReplayNetInput net_input_;
  ReplayOutcome outcome_;
  bool done_ = false;
};

}  // namespace vmm
