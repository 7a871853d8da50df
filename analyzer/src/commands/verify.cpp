// `rr-analyze verify REC`: every chunk, the hash chain, the MAC (with --key),
// the snapshot and checkpoint digests. Exit 0 intact, 1 with the first
// problem's offset and kind, 2 for usage errors.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands/command.h"
#include "recording_check.h"

namespace analyzer {
namespace {

int report(const RecordingCheck& c, bool json) {
  auto problem = c.first_problem();
  // An unterminated log (writer killed) is a problem too: the recording
  // is a prefix, not the whole run.
  const bool intact = !problem && c.log.ok;
  if (json) {
    nlohmann::json j;
    j["recording"] = c.dir.root().string();
    j["intact"] = intact;
    j["chunks"] = c.log.chunk_count;
    j["records"] = c.log.record_count;
    j["mac_checked"] = c.log.authenticated;
    j["encrypted"] = c.log.encrypted;
    j["snapshot_ok"] = c.snapshot.ok;
    j["checkpoints_checked"] = c.checkpoints.size();
    if (problem)
      j["problem"] = {{"component", problem->component},
                      {"kind", problem->kind},
                      {"file", problem->file},
                      {"offset", problem->offset},
                      {"message", problem->message}};
    else
      j["problem"] = nullptr;
    fmt::print("{}\n", j.dump(2));
  } else if (intact) {
    fmt::print(
        "intact: {} chunks, {} records, hash chain ok, {}, snapshot digest ok, {} "
        "checkpoint(s) ok\n",
        c.log.chunk_count, c.log.record_count, c.log.authenticated ? "MAC ok" : "no MAC checked",
        c.checkpoints.size());
  } else if (problem) {
    fmt::print("PROBLEM: {} {} at offset {} of {}: {}\n", problem->component, problem->kind,
               problem->offset, problem->file, problem->message);
  }
  return intact ? kExitOk : kExitProblem;
}

}  // namespace

void add_verify_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<RecordingOptions>();
  CLI::App* command = app.add_subcommand(
      "verify", "check every chunk, the hash chain, the MAC (with --key) and the snapshots");
  options->add_to(*command);
  command->callback([options, &action] {
    action = [options] {
      return report(check_recording(options->recording, options->key()), options->json);
    };
  });
}

}  // namespace analyzer
