#include "sql/timeline_tables.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <span>

#include "progress.h"
#include "timeline/timeline.h"
#include "travel/time_traveler.h"

namespace analyzer::sql {
namespace {

std::optional<int64_t> known(int64_t value) {
  return value < 0 ? std::nullopt : std::optional(value);
}

std::optional<std::string> nonempty(const std::string& text) {
  return text.empty() ? std::nullopt : std::optional(text);
}

std::optional<std::string> position_text(const std::optional<PositionName>& pos) {
  return pos ? std::optional(pos->to_string()) : std::nullopt;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words) out += (out.empty() ? "" : " ") + word;
  return out;
}

std::optional<uint64_t> arg(const TimelineEvent& e, size_t index) {
  return index < e.args.size() ? std::optional(e.args[index]) : std::nullopt;
}

std::optional<std::span<const uint8_t>> bytes_of(const std::string& data) {
  if (data.empty()) return std::nullopt;
  return std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

class EventWriter {
 public:
  explicit EventWriter(Database& db)
      : process_events_(db.prepare(
            "INSERT INTO process_events (id, position, landmark, async_seq, steps, action, "
            "function, pid, comm, path, cmdline, argv_json, child_pid, exit_code, result, "
            "result_position, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")),
        syscalls_(db.prepare(
            "INSERT INTO syscalls (id, position, landmark, async_seq, steps, pid, comm, number, "
            "name, arg0, arg1, arg2, arg3, args_json, result, result_position, data, function, "
            "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")),
        file_events_(db.prepare(
            "INSERT INTO file_events (id, position, landmark, async_seq, steps, action, function, "
            "pid, comm, path, bytes, result, result_position, data, error) VALUES (?, ?, ?, ?, ?, "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")),
        net_events_(db.prepare(
            "INSERT INTO net_events (id, position, landmark, async_seq, steps, action, function, "
            "pid, comm, interface, bytes, data, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?)")) {}

  void add(const TimelineEvent& e, TimelineTablesResult& counts) {
    const librr::Position& p = e.position.base;
    const std::string name = e.position.to_string();
    // Named by arrivals: the step count is not known (it would cost single steps).
    const std::optional<int64_t> steps =
        known(e.position.is_exact() ? static_cast<int64_t>(p.steps) : -1);
    const std::string& kind = e.kind;
    const std::optional<std::string> error = nonempty(e.error);
    if (kind == kEventProcessCreate || kind == kEventExec || kind == kEventExit) {
      const bool exec = kind == kEventExec;
      process_events_.run(++counts.process_events, name, p.landmark, p.async_seq, steps, kind,
                          e.function, known(e.pid), e.comm, exec ? nonempty(e.path) : std::nullopt,
                          exec ? std::optional(join(e.argv)) : std::nullopt,
                          exec ? std::optional(nlohmann::json(e.argv).dump()) : std::nullopt,
                          known(e.child_pid),
                          kind == kEventExit ? std::optional(e.exit_code) : std::nullopt, e.result,
                          position_text(e.result_position), error);
      if (kind == kEventProcessCreate) {
        // The new pid: known at entry when the kernel chose it already, else
        // the function's return value.
        const int64_t child = e.child_pid >= 0 ? e.child_pid : e.result.value_or(-1);
        if (child >= 0) counts.creations.push_back({child, p, name});
      }
    } else if (kind == kEventSyscall) {
      syscalls_.run(++counts.syscalls, name, p.landmark, p.async_seq, steps, known(e.pid), e.comm,
                    e.syscall_number, nonempty(e.syscall_name), arg(e, 0), arg(e, 1), arg(e, 2),
                    arg(e, 3), nlohmann::json(e.args).dump(), e.result,
                    position_text(e.result_position), bytes_of(e.data), e.function, error);
    } else if (kind == kEventFileOpen || kind == kEventFileWrite) {
      const bool write = kind == kEventFileWrite;
      file_events_.run(++counts.file_events, name, p.landmark, p.async_seq, steps, kind, e.function,
                       known(e.pid), e.comm, nonempty(e.path),
                       write ? std::optional(e.length) : std::nullopt, e.result,
                       position_text(e.result_position), write ? bytes_of(e.data) : std::nullopt,
                       error);
    } else if (kind == kEventNetSend || kind == kEventNetReceive) {
      net_events_.run(++counts.net_events, name, p.landmark, p.async_seq, steps, kind, e.function,
                      known(e.pid), e.comm, nonempty(e.path),
                      e.error.empty() ? std::optional(e.length) : std::nullopt, bytes_of(e.data),
                      error);
    } else {
      ++counts.other_events;
    }
  }

 private:
  Statement process_events_;
  Statement syscalls_;
  Statement file_events_;
  Statement net_events_;
};

}  // namespace

TimelineTablesResult export_timeline_tables(Database& db, const std::filesystem::path& recording,
                                            const std::optional<librr::Key>& key,
                                            const Profile& profile,
                                            const std::set<std::string>& kinds) {
  TravelOptions travel;
  travel.key = key;
  // Checkpoints serve the next pass's start and any hit made exact; taken
  // every 0.25 s they cost ~15% of a long pass (comparing guest RAM).
  travel.checkpoint_interval_seconds = kTimelineCheckpointInterval;
  TimeTraveler traveler(recording, travel);

  ProgressBar progress("export: timeline", 1000, "/1000");
  TimelineOptions options;
  options.kinds = kinds;
  options.progress = [&progress](double fraction) {
    progress.update(static_cast<uint64_t>(fraction * 1000));
  };
  const std::vector<TimelineEvent> events = build_timeline(traveler, profile, options);
  progress.finish();

  TimelineTablesResult result;
  EventWriter writer(db);
  for (const TimelineEvent& event : events) writer.add(event, result);
  return result;
}

}  // namespace analyzer::sql
