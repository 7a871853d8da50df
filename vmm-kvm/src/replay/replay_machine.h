#pragma once
// Everything a replay of a recording needs, set up once and owned together:
// the opened recording, the compatibility check, a Machine configured like the
// recorded one and restored from the initial snapshot, and the replay-side
// endpoints (Replayer, Timeline, VirtualClock, ReplaySerialInput) wired into
// a ReplaySession. `rr-vmm replay`, the analyzer's TimeTraveler and the SQL
// export all start here, so they replay with one engine.
//
//   vmm::ReplayMachine replay(recording_dir, {.key = key});
//   vmm::ReplayOutcome outcome = replay.session().run();
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "clock/virtual_clock.h"
#include "librr/crypto.h"
#include "librr/recording.h"
#include "librr/replayer.h"
#include "machine/machine.h"
#include "replay/replay_session.h"
#include "replay/session_common.h"

namespace vmm {

// The recording itself is damaged (snapshot checksum, MAC, a snapshot that
// does not fit the recorded machine): unlike a usage error, retrying with
// other options cannot help. The message names the file and what is wrong.
class RecordingDamaged : public librr::FormatError {
 public:
  using librr::FormatError::FormatError;
};

struct ReplayMachineOptions {
  std::optional<librr::Key> key;  // of a MAC'd or encrypted recording
  // Replay even if recorded on another CPU or device-model version; each
  // such problem is passed to `warn` instead of refusing.
  bool force = false;
  std::function<void(const std::string&)> warn;
  // Where the guest's console goes; null means stdout. Callers that want the
  // console text (SQL export, tests) pass a BufferSerialOutput.
  SerialOutput* serial_output = nullptr;
};

class ReplayMachine {
 public:
  // Throws librr::Error for what the caller can fix (missing recording, bad
  // key, incompatible host without force, missing disk image) and
  // RecordingDamaged when the initial snapshot fails its check or does not fit.
  ReplayMachine(const std::filesystem::path& recording, ReplayMachineOptions options);
  ~ReplayMachine();
  ReplayMachine(const ReplayMachine&) = delete;
  ReplayMachine& operator=(const ReplayMachine&) = delete;

  const librr::RecordingDir& recording() const { return *dir_; }
  const std::optional<librr::Key>& key() const { return options_.key; }
  Machine& machine() { return *machine_; }
  VirtualClock& clock() { return clock_; }
  librr::Replayer& replayer() { return *replayer_; }
  Timeline& timeline() { return timeline_; }
  ReplaySerialInput& serial_input() { return *serial_input_; }
  // The session replaying this machine from where it is now.
  ReplaySession& session() { return *session_; }

  // Re-reads the log so that the next record handed out is record `index`
  // (0-based): the log half of restoring a checkpoint. The caller restores
  // the machine, clock, timeline and session state to match.
  void reposition_log(uint64_t index);
  // Index (0-based) of the next log record the replay has not consumed.
  uint64_t next_record_index() const { return log_base_index_ + replayer_->records_consumed(); }

 private:
  librr::LogReaderOptions log_options() const;

  ReplayMachineOptions options_;
  std::unique_ptr<librr::RecordingDir> dir_;
  std::unique_ptr<librr::Replayer> replayer_;
  uint64_t log_base_index_ = 0;  // records consumed before replayer_ was (re)opened
  VirtualClock clock_;
  Timeline timeline_;
  std::unique_ptr<ReplaySerialInput> serial_input_;
  std::unique_ptr<Machine> machine_;
  std::unique_ptr<ReplaySession> session_;
};

}  // namespace vmm
