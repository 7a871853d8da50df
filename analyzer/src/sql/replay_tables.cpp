#include "sql/replay_tables.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "devices/serial_backends.h"
#include "librr/replayer.h"
#include "progress.h"
#include "replay/replay_machine.h"
#include "sql/log_tables.h"

namespace analyzer::sql {
namespace {

// The guest's console, cut into lines, each tagged with the replay position
// at which its first byte was written. Bytes arrive on the replay thread
// during PIO handling, where the timeline is current.
class PositionedLineCapture final : public vmm::SerialOutput {
 public:
  struct Line {
    librr::Position pos;
    std::string text;
  };

  void attach(const vmm::Timeline& timeline) { timeline_ = &timeline; }
  void write(uint8_t byte) override {
    if (lines_.empty() || lines_.back().text.ends_with('\n'))
      lines_.push_back({timeline_ ? timeline_->position() : librr::Position{}, {}});
    lines_.back().text.push_back(static_cast<char>(byte));
  }
  const std::vector<Line>& lines() const { return lines_; }

 private:
  const vmm::Timeline* timeline_ = nullptr;
  std::vector<Line> lines_;
};

void write_lines(Database& db, const std::vector<PositionedLineCapture::Line>& lines) {
  Statement insert = db.prepare(
      "INSERT INTO serial_output (line_number, position, landmark, async_seq, text) VALUES (?, "
      "?, ?, ?, ?)");
  uint64_t number = 0;
  for (const auto& line : lines)
    insert.run(++number, line.pos.to_string(), line.pos.landmark, line.pos.async_seq, line.text);
}

void write_divergence(Database& db, const librr::Position& where, const std::string& message) {
  db.prepare(
        "INSERT INTO divergences (id, position, landmark, async_seq, message) VALUES (1, ?, ?, ?, "
        "?)")
      .run(where.to_string(), where.landmark, where.async_seq, message);
}

ReplayTablesResult unavailable(const std::string& why) {
  std::fprintf(stderr,
               "rr-analyze: warning: not replaying (%s): serial_output and divergences "
               "stay empty\n",
               why.c_str());
  return {"unavailable", std::nullopt, why, 0, 0};
}

}  // namespace

ReplayTablesResult export_replay_tables(Database& db, const librr::RecordingDir& recording,
                                        const std::optional<librr::Key>& key, uint64_t end_landmark,
                                        ReplayObserver* observer) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) return unavailable("/dev/kvm is not usable");
  PositionedLineCapture console;
  std::optional<vmm::ReplayMachine> replay;
  try {
    replay.emplace(recording.root(),
                   vmm::ReplayMachineOptions{
                       .key = key, .force = false, .warn = {}, .serial_output = &console});
  } catch (const vmm::RecordingDamaged& e) {
    throw RecordingProblem(
        fmt::format("cannot replay {}: {}", recording.root().string(), e.what()));
  } catch (const librr::LogKeyError&) {
    throw;  // a usage error, as for the log tables
  } catch (const std::exception& e) {
    // Another CPU or device-model version, a missing disk image, KVM refusing
    // the VM: the recording is fine, this host cannot replay it.
    return unavailable(e.what());
  }
  console.attach(replay->timeline());

  ReplayTablesResult result;
  ProgressBar progress("export: replay", end_landmark, "landmarks");
  vmm::ReplaySession& session = replay->session();
  std::optional<librr::Divergence> divergence;
  try {
    while (session.advance()) {
      progress.update(replay->timeline().landmark());
      if (observer != nullptr) observer->after_step(*replay);
    }
  } catch (const librr::Divergence& e) {
    divergence = e;
  }
  progress.finish();
  if (observer != nullptr) observer->at_end(*replay);
  const vmm::ReplayOutcome& outcome = session.outcome();
  write_lines(db, console.lines());
  result.serial_lines = console.lines().size();
  if (divergence) {
    result.status = "diverged";
    result.end = divergence->where();
    result.message = divergence->what();
    write_divergence(db, divergence->where(), result.message);
    result.divergences = 1;
  } else if (!outcome.faithful) {
    // The session ended without a thrown divergence but not at the log's end.
    result.status = "diverged";
    result.end = outcome.end;
    result.message = outcome.message;
    write_divergence(db, outcome.end, outcome.message);
    result.divergences = 1;
  } else {
    result.status = outcome.log_terminated ? "faithful" : "faithful_prefix";
    result.end = outcome.end;
    result.message = outcome.message;
  }
  return result;
}

}  // namespace analyzer::sql
