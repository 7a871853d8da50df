// `rr-analyze info REC`: what a recording is, in one screen.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/command.h"
#include "librr/log_byte_report.h"
#include "recording_check.h"

namespace analyzer {
namespace {

nlohmann::json positions_json(const librr::VerifyReport& log) {
  nlohmann::json j;
  j["first"] = log.first ? log.first->to_string() : "";
  j["last"] = log.last ? log.last->to_string() : "";
  j["duration_landmarks"] = log.last ? log.last->landmark : 0;
  return j;
}

nlohmann::json counts_json(const librr::VerifyReport& log) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < librr::kEventTypeCount; ++i)
    j[std::string(librr::event_type_name(static_cast<librr::EventType>(i + 1)))] =
        log.counts_by_type[i];
  return j;
}

nlohmann::json info_json(const RecordingCheck& c) {
  const librr::Manifest& m = c.dir.manifest();
  nlohmann::json j;
  j["recording"] = c.dir.root().string();
  j["manifest"] = nlohmann::json::parse(m.to_json_string());
  j["log"] = {{"file", c.dir.log_path().string()},     {"bytes", c.log_bytes},
              {"chunks", c.log.chunk_count},           {"records", c.log.record_count},
              {"records_by_type", counts_json(c.log)}, {"positions", positions_json(c.log)},
              {"terminated", c.log.terminated},        {"mac", c.log_info.mac},
              {"encrypted", c.log_info.encrypted},     {"creator", c.log_info.creator}};
  j["snapshot"] = {{"file", c.dir.snapshot_path().string()},
                   {"bytes", c.snapshot_bytes},
                   {"digest", m.snapshot_digest},
                   {"ok", c.snapshot.ok}};
  j["checkpoints"] = m.checkpoints.size();
  const auto problem = c.first_problem();
  j["intact"] = !problem.has_value() && c.log.ok;
  return j;
}

void print_info(const RecordingCheck& c) {
  const librr::Manifest& m = c.dir.manifest();
  fmt::print("recording   {}\n", c.dir.root().string());
  fmt::print("created     {} by {} {} (librr {})\n", m.created_utc, m.tools.vmm_name,
             m.tools.vmm_version, m.tools.librr);
  fmt::print("host cpu    {} (family {} model {} stepping {})\n", m.host.model_name, m.host.family,
             m.host.model, m.host.stepping);
  for (const auto& [key, value] : m.guest) fmt::print("guest       {} = {}\n", key, value);
  fmt::print("snapshot    {} bytes, digest {}{}\n", c.snapshot_bytes, m.snapshot_digest,
             c.snapshot.ok ? "" : " (DAMAGED: " + c.snapshot.message + ")");
  fmt::print("log         {} bytes, {} chunks, {} records{}{}\n", c.log_bytes, c.log.chunk_count,
             c.log.record_count, c.log_info.mac ? ", MAC" : "",
             c.log_info.encrypted ? ", encrypted" : "");
  for (size_t i = 0; i < librr::kEventTypeCount; ++i)
    fmt::print("  {:<20}{:>12}\n", librr::event_type_name(static_cast<librr::EventType>(i + 1)),
               c.log.counts_by_type[i]);
  fmt::print("positions   {} .. {} ({} landmarks)\n", c.log.first ? c.log.first->to_string() : "-",
             c.log.last ? c.log.last->to_string() : "-", c.log.last ? c.log.last->landmark : 0);
  fmt::print("checkpoints {}\n", m.checkpoints.size());
  if (auto problem = c.first_problem())
    fmt::print("problem     {} {} at offset {}: {}\n", problem->component, problem->kind,
               problem->offset, problem->message);
  else if (!c.log.terminated)
    fmt::print("problem     log is unterminated (recording did not finish cleanly)\n");
}

}  // namespace

void add_info_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<RecordingOptions>();
  auto bytes = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "info", "summarize a recording: manifest, record counts by type, chunks, duration");
  options->add_to(*command);
  command->add_flag("--bytes", *bytes,
                    "also print where the log's bytes go, per record kind (raw and compressed)");
  command->callback([options, bytes, &action] {
    action = [options, bytes] {
      RecordingCheck check = check_recording(options->recording, options->key());
      if (*bytes) {
        fmt::print("{}",
                   librr::measure_log_bytes(check.dir.log_path(), options->key()).to_string());
        return kExitOk;
      }
      if (options->json)
        fmt::print("{}\n", info_json(check).dump(2));
      else
        print_info(check);
      return kExitOk;
    };
  });
}

}  // namespace analyzer
