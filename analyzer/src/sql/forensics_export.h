#pragma once
// The forensic half of `rr-analyze export` (docs/sql.md, "Forensic tables"):
// finds the guest kernel's profile the way `ps` and `dmesg` do, samples the
// OS model during the export's replay (ForensicSampler), runs the timeline
// passes, and writes processes, kernel_log, mounts, net_devices,
// process_events, syscalls, file_events and net_events. Without a profile (a recording
// of no known kernel) the tables stay empty and recording.forensics_status
// says why; the rest of the export does not depend on any of this.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "librr/crypto.h"
#include "librr/recording.h"
#include "profile/profile.h"
#include "sql/forensic_sampler.h"
#include "sql/replay_tables.h"
#include "sql/sqlite.h"

namespace analyzer::sql {

struct ForensicsOptions {
  bool enabled = true;   // false: --no-forensics (or --no-replay)
  bool timeline = true;  // false (--no-timeline): skip the extra replay passes for the event tables
  // --timeline-kinds: the event kinds to collect (fewer kinds, fewer passes); empty = all.
  std::set<std::string> timeline_kinds;
  std::string profile;  // ISF file; "" = generated from the recorded kernel and cached
};

// The recording row's forensics_* columns.
struct ForensicsOutcome {
  std::string status =
      "skipped";  // complete, partial, no_timeline, skipped, no_profile, unavailable
  std::optional<std::string> os;
  std::optional<std::string> profile;
  std::optional<std::string> message;
  std::optional<uint64_t> sample_interval;
  uint64_t samples = 0;
  uint64_t processes = 0;
  uint64_t kernel_log = 0;
  uint64_t events = 0;  // rows of process_events, syscalls, file_events and net_events
};

class ExportForensics final : public ReplayObserver {
 public:
  // Loads the profile now (generating it may take seconds) so that a
  // missing one is known before the replay.
  ExportForensics(const librr::RecordingDir& recording, const ForensicsOptions& options,
                  uint64_t end_landmark);
  ~ExportForensics() override;

  // What to pass to export_replay_tables: null when there is nothing to sample.
  ReplayObserver* observer() { return sampler_ ? this : nullptr; }
  void after_step(vmm::ReplayMachine& machine) override;
  void at_end(vmm::ReplayMachine& machine) override;

  // After the replay (whose status says whether the machine was there to
  // sample): runs the timeline passes and writes the tables.
  ForensicsOutcome finish(Database& db, const std::string& replay_status,
                          const std::optional<librr::Key>& key);

 private:
  std::filesystem::path recording_;
  ForensicsOptions options_;
  ForensicsOutcome outcome_;
  std::unique_ptr<Profile> profile_;
  std::unique_ptr<ForensicSampler> sampler_;
  bool reached_end_ = false;
};

}  // namespace analyzer::sql
