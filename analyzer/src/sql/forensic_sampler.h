#pragma once
// What the guest OS looked like during the export's replay: the OS model
// (os/os_model.h) is read at regular positions (every `interval` landmarks)
// and at the end. From those samples come the `processes` table (each task's
// first and last sighting) and the first position of each `kernel_log`
// record; the end gives `kernel_log`, `mounts` and `net_devices`.
// Sampling only reads guest memory and registers: the replay itself is not
// changed, so the other replay tables are the same with or without it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "librr/position.h"
#include "os/linux_model.h"
#include "os/os_model.h"
#include "profile/profile.h"
#include "sql/sqlite.h"

namespace analyzer::sql {

// One task identity (pid + kernel object) as the samples saw it.
struct SeenProcess {
  Process last;  // as it was at last_seen
  librr::Position first_seen;
  // first_seen's text when it is the name of a timeline event (which may be
  // named by arrivals, travel/time_traveler.h); empty: first_seen's own.
  std::string first_seen_name;
  librr::Position last_seen;
  std::string first_seen_source = "sample";  // or "process_create" (timeline)
  uint64_t samples = 0;
  bool alive_at_end = false;
};

// A task the timeline saw being created, to refine first_seen with.
struct ProcessCreation {
  int64_t pid = -1;
  librr::Position position;  // the (landmark, async stop) it happened after
  std::string name;          // the event's position name
};

class ForensicSampler {
 public:
  // Aims at about `target_samples` samples over a recording `end_landmark` long.
  ForensicSampler(const Profile& profile, uint64_t end_landmark, uint64_t target_samples = 1000);

  uint64_t interval() const { return interval_; }
  // True when `landmark` is due for a sample (cheap: call it after every step).
  bool due(uint64_t landmark) const { return landmark >= next_sample_; }
  // Reads the task list (and the kernel log's sequence numbers) at `pos`.
  void sample(const MachineView& view, const librr::Position& pos);
  // The last sample, plus the end-only tables (kernel log, mounts, devices).
  void finish(const MachineView& view, const librr::Position& pos);

  // Moves first_seen back to the creation position the timeline found.
  void apply_creations(const std::vector<ProcessCreation>& creations);

  uint64_t samples() const { return samples_; }
  uint64_t process_count() const { return processes_.size(); }
  uint64_t log_count() const { return log_.size(); }
  const std::string& os_name() const { return os_name_; }
  // Problems met (first failed sample, an end table the OS lacks...); empty if none.
  const std::vector<std::string>& problems() const { return problems_; }
  // True if something the OS model supports could not be read.
  bool incomplete() const { return incomplete_; }

  // Writes processes, kernel_log, mounts and net_devices.
  void write(Database& db) const;

 private:
  std::unique_ptr<OsModel> model_at(const MachineView& view);
  void record_processes(const OsModel& model, const librr::Position& pos, bool at_end);
  void record_log_sequences(const OsModel& model, const librr::Position& pos);
  void note_failure(const std::string& what, const librr::Position& pos, const std::string& why);

  const Profile& profile_;
  uint64_t interval_;
  uint64_t next_sample_ = 0;
  uint64_t samples_ = 0;
  uint64_t failed_samples_ = 0;
  std::string os_name_;
  std::vector<std::string> problems_;
  bool incomplete_ = false;

  std::map<std::pair<int64_t, uint64_t>, SeenProcess> processes_;  // by (pid, task address)
  std::map<uint64_t, librr::Position> log_first_seen_;             // by sequence
  std::optional<librr::Position> end_;
  std::vector<LogRecord> log_;
  std::vector<Mount> mounts_;
  std::vector<NetDevice> net_devices_;
};

}  // namespace analyzer::sql
