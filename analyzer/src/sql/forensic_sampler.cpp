#include "sql/forensic_sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "os/kernel_memory.h"

namespace analyzer::sql {
namespace {

std::optional<int64_t> known(int64_t value) {
  return value < 0 ? std::nullopt : std::optional(value);
}

std::optional<int64_t> detail(const Process& p, const std::string& name) {
  const auto it = p.details.find(name);
  return it == p.details.end() ? std::nullopt : std::optional(it->second);
}

}  // namespace

ForensicSampler::ForensicSampler(const Profile& profile, uint64_t end_landmark,
                                 uint64_t target_samples)
    : profile_(profile), interval_(std::max<uint64_t>(1, end_landmark / target_samples)) {}

std::unique_ptr<OsModel> ForensicSampler::model_at(const MachineView& view) {
  std::unique_ptr<OsModel> model = make_os_model(profile_, view);
  os_name_ = model->name();
  return model;
}

void ForensicSampler::note_failure(const std::string& what, const librr::Position& pos,
                                   const std::string& why) {
  problems_.push_back(fmt::format("{} at {}: {}", what, pos.to_string(), why));
}

void ForensicSampler::sample(const MachineView& view, const librr::Position& pos) {
  next_sample_ = pos.landmark + interval_;
  try {
    const std::unique_ptr<OsModel> model = model_at(view);
    record_processes(*model, pos, false);
    record_log_sequences(*model, pos);
    ++samples_;
  } catch (const librr::Error& e) {
    // Early in a boot the kernel's lists may not be set up yet; only the
    // first such failure is worth reporting, with the count.
    if (failed_samples_++ == 0) note_failure("reading the OS model", pos, e.what());
  }
}

void ForensicSampler::record_processes(const OsModel& model, const librr::Position& pos,
                                       bool at_end) {
  for (const Process& p : model.processes()) {
    const auto [it, inserted] = processes_.try_emplace({p.pid, p.address});
    SeenProcess& seen = it->second;
    if (inserted) seen.first_seen = pos;
    seen.last = p;
    seen.last_seen = pos;
    ++seen.samples;
    if (at_end) seen.alive_at_end = true;
  }
}

void ForensicSampler::record_log_sequences(const OsModel& model, const librr::Position& pos) {
  const auto* linux_model = dynamic_cast<const LinuxModel*>(&model);
  if (linux_model == nullptr) return;  // no structured log on other OSes
  for (const LogRecord& record : linux_model->log_records())
    log_first_seen_.try_emplace(record.sequence, pos);
}

void ForensicSampler::finish(const MachineView& view, const librr::Position& pos) {
  end_ = pos;
  std::unique_ptr<OsModel> model;
  try {
    model = model_at(view);
    record_processes(*model, pos, true);
    ++samples_;
  } catch (const librr::Error& e) {
    incomplete_ = true;
    note_failure("reading the task list at the end", pos, e.what());
    return;
  }
  if (failed_samples_ > 1)
    problems_.push_back(fmt::format("{} of {} samples could not be read", failed_samples_,
                                    failed_samples_ + samples_));
  // Each end-only table on its own: an OS without mounts still has a log.
  const auto read_table = [&](const char* what, const auto& read) {
    try {
      read();
    } catch (const NotSupported&) {
      // The OS has no such thing (the test guest has no mounts): an empty table.
    } catch (const librr::Error& e) {
      incomplete_ = true;
      note_failure(fmt::format("reading {}", what), pos, e.what());
    }
  };
  read_table("the kernel log", [&] {
    if (const auto* linux_model = dynamic_cast<const LinuxModel*>(model.get())) {
      log_ = linux_model->log_records();
      for (const LogRecord& record : log_) log_first_seen_.try_emplace(record.sequence, pos);
    }
  });
  read_table("the mounts", [&] { mounts_ = model->mounts(); });
  read_table("the network devices", [&] { net_devices_ = model->net_devices(); });
}

void ForensicSampler::apply_creations(const std::vector<ProcessCreation>& creations) {
  for (const ProcessCreation& creation : creations) {
    // The task it created is the first identity with that pid sampled after it.
    SeenProcess* match = nullptr;
    for (auto& [key, seen] : processes_) {
      if (key.first != creation.pid || seen.first_seen_source != "sample" ||
          seen.first_seen < creation.position)
        continue;
      if (match == nullptr || seen.first_seen < match->first_seen) match = &seen;
    }
    if (match == nullptr) continue;
    match->first_seen = creation.position;
    match->first_seen_name = creation.name;
    match->first_seen_source = "process_create";
  }
}

void ForensicSampler::write(Database& db) const {
  std::vector<const SeenProcess*> ordered;
  for (const auto& [key, seen] : processes_) ordered.push_back(&seen);
  std::stable_sort(ordered.begin(), ordered.end(), [](const SeenProcess* a, const SeenProcess* b) {
    return std::pair(a->first_seen, a->last.pid) < std::pair(b->first_seen, b->last.pid);
  });
  Statement insert_process = db.prepare(
      "INSERT INTO processes (id, pid, tgid, parent, name, state, uid, gid, kernel_thread, "
      "page_table, task_address, exit_code, syscall_count, details_json, first_seen_position, "
      "first_seen_landmark, first_seen_async_seq, first_seen_source, last_seen_position, "
      "last_seen_landmark, last_seen_async_seq, samples, alive_at_end) VALUES (?, ?, ?, ?, ?, ?, "
      "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  uint64_t id = 0;
  for (const SeenProcess* seen : ordered) {
    const Process& p = seen->last;
    insert_process.run(
        ++id, p.pid, p.tgid, known(p.parent_pid), p.name, p.state, known(p.uid), known(p.gid),
        p.kernel_thread, p.page_table != 0 ? std::optional(p.page_table) : std::nullopt, p.address,
        detail(p, "exit_code"), detail(p, "syscalls_total"), nlohmann::json(p.details).dump(),
        seen->first_seen_name.empty() ? seen->first_seen.to_string() : seen->first_seen_name,
        seen->first_seen.landmark, seen->first_seen.async_seq, seen->first_seen_source,
        seen->last_seen.to_string(), seen->last_seen.landmark, seen->last_seen.async_seq,
        seen->samples, seen->alive_at_end);
  }
  if (!end_) return;
  const librr::Position& end = *end_;

  Statement insert_log = db.prepare(
      "INSERT INTO kernel_log (sequence, timestamp_ns, level, facility, message, line, position, "
      "landmark, async_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  for (const LogRecord& record : log_) {
    std::string line = LinuxModel::format_log({record});
    if (line.ends_with('\n')) line.pop_back();
    const librr::Position& first = log_first_seen_.at(record.sequence);
    insert_log.run(record.sequence, record.timestamp_ns, record.level, record.facility, record.text,
                   line, first.to_string(), first.landmark, first.async_seq);
  }

  Statement insert_mount = db.prepare(
      "INSERT INTO mounts (id, device, path, type, position, landmark, async_seq) VALUES (?, ?, "
      "?, ?, ?, ?, ?)");
  id = 0;
  for (const Mount& mount : mounts_)
    insert_mount.run(++id, mount.device, mount.path, mount.fs_type, end.to_string(), end.landmark,
                     end.async_seq);

  Statement insert_device = db.prepare(
      "INSERT INTO net_devices (interface, ifindex, mac, mtu, flags, position, landmark, "
      "async_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  for (const NetDevice& device : net_devices_)
    insert_device.run(device.name, device.index, device.mac, device.mtu, device.flags,
                      end.to_string(), end.landmark, end.async_seq);
}

}  // namespace analyzer::sql
