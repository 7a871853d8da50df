#pragma once
// Fills the tables only a replay can: serial_output (what the guest printed,
// line by line, with the position of each line) and divergences. Replays
// with vmm::ReplayMachine, the engine `rr-vmm replay` uses.
#include <cstdint>
#include <optional>
#include <string>

#include "librr/crypto.h"
#include "librr/position.h"
#include "librr/recording.h"
#include "sql/sqlite.h"

namespace vmm {
class ReplayMachine;
}

namespace analyzer::sql {

// Looks at the machine while the export replays it (the forensic sampler):
// after every landmark or asynchronous stop, and once where replay stopped
// (the end, or a divergence). It must only read the machine.
class ReplayObserver {
 public:
  virtual ~ReplayObserver() = default;
  virtual void after_step(vmm::ReplayMachine& machine) = 0;
  virtual void at_end(vmm::ReplayMachine& machine) = 0;
};

struct ReplayTablesResult {
  std::string status;  // recording.replay_status: faithful, faithful_prefix, diverged, unavailable
  std::optional<librr::Position> end;
  std::string message;
  uint64_t serial_lines = 0;
  uint64_t divergences = 0;
};

// `end_landmark` only scales the progress bar. Throws RecordingProblem when
// the recording's snapshot is damaged; a host without usable KVM gives
// status "unavailable" (the log tables are still worth having).
ReplayTablesResult export_replay_tables(Database& db, const librr::RecordingDir& recording,
                                        const std::optional<librr::Key>& key, uint64_t end_landmark,
                                        ReplayObserver* observer = nullptr);

}  // namespace analyzer::sql
