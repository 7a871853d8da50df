#pragma once
// Re-runs a recorded machine from its initial snapshot, feeding it the log:
// clock samples, serial input and asynchronous positions at their positions,
// checking every interrupt delivery and state digest on the way. Mirrors
// RecordSession step for step (docs/record-replay.md).
#include <cstdint>
#include <optional>
#include <string>

#include "clock/virtual_clock.h"
#include "librr/replayer.h"
#include "machine/machine.h"
#include "replay/memory_shadow.h"
#include "replay/session_common.h"

namespace vmm {

struct ReplayOutcome {
  bool faithful = false;       // reached the recording's end with every check passing
  bool log_terminated = true;  // false: the recording was cut short (kill -9), replayed to its end
  librr::Position end;         // where replay stopped
  std::string message;         // the divergence, or how the recording ended
  int guest_exit_status = -1;
  uint64_t async_positions = 0;
  uint64_t interrupts = 0;
  uint64_t digests_checked = 0;
  uint64_t net_frames = 0;  // logged frames delivered to virtio-net
};

class ReplaySession {
 public:
  // The machine has been restored from the recording's initial snapshot and
  // uses `clock`; its serial input is a ReplaySerialInput on `replayer` and `timeline`.
  ReplaySession(Machine& machine, VirtualClock& clock, librr::Replayer& replayer,
                Timeline& timeline);
  // Never throws librr::Divergence: a divergence is reported in the outcome.
  ReplayOutcome run();

 private:
  void step();
  void check_interrupt_delivery();
  bool install_async_position_if_next();
  void at_landmark();
  void at_halt();
  void apply_clock_if_next(std::optional<uint64_t> before_deadline);
  void check_digest_if_next();
  bool end_if_next();
  const librr::Event* next_at_position();

  Machine& machine_;
  VirtualClock& clock_;
  librr::Replayer& replayer_;
  Timeline& timeline_;
  MemoryShadow shadow_;
  ReplayNetInput net_input_;
  ReplayOutcome outcome_;
  bool done_ = false;
};

}  // namespace vmm
