#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cli/record_command.h"
#include "librr/log.h"
#include "librr/recording.h"
#include "net/cooperative_cli.h"
#include "replay/replay_machine.h"

namespace vmm::cli {
namespace {

struct ReplayOptions {
  std::string recording;
  std::string key_file;
  bool verify = false;
  bool force = false;
  bool quiet = false;
  net::CooperativeReplayOptions cooperation;
};

int replay_command(const ReplayOptions& options) {
  std::unique_ptr<ReplayMachine> replay;
  std::shared_ptr<net::CooperativeReplayer> cooperation;
  try {
    ReplayMachineOptions machine_options;
    if (!options.key_file.empty()) machine_options.key = librr::Key::load_file(options.key_file);
    machine_options.force = options.force;
    machine_options.warn = [](const std::string& problem) {
      std::fprintf(stderr, "rr-vmm: warning: %s\n", problem.c_str());
    };
    if (options.verify) {
      // The whole log's integrity before any replay work.
      librr::LogReaderOptions log_options;
      log_options.key = machine_options.key;
      const librr::RecordingDir dir = librr::RecordingDir::open(options.recording);
      librr::LogReader reader(dir.log_path(), log_options);
      const librr::VerifyReport report = reader.verify();
      if (report.problem && report.problem->kind != librr::LogProblemKind::missing_end) {
        std::fprintf(stderr, "rr-vmm: log damaged: %s\n", report.problem->to_string().c_str());
        return 1;
      }
    }
    replay = std::make_unique<ReplayMachine>(options.recording, std::move(machine_options));
    cooperation = net::enable_cooperative_replay(options.cooperation, replay->machine(),
                                                 replay->recording().manifest(), replay->key());
  } catch (const RecordingDamaged& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }

  const auto started = std::chrono::steady_clock::now();
  ReplayOutcome outcome;
  try {
    outcome = replay->session().run();
  } catch (const std::exception& e) {  // a frame reference that cannot be resolved
    std::fprintf(stderr, "rr-vmm: replay stopped: %s\n", e.what());
    return 2;
  }
  if (cooperation && !options.quiet)
    std::fprintf(stderr,
                 "rr-vmm: referenced frames resolved: %llu from the gateway log, %llu from "
                 "cooperating hosts' replays\n",
                 static_cast<unsigned long long>(cooperation->stats().from_gateway),
                 static_cast<unsigned long long>(cooperation->stats().from_hosts));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (outcome.faithful) {
    if (!options.quiet)
      std::fprintf(stderr,
                   "rr-vmm: replay faithful to %s in %.2f s: %s; %llu async positions (%llu "
                   "found by breakpoint search, %llu hits; %llu at kernel returns; the rest "
                   "installed), %llu interrupts "
                   "and %llu state digests checked, %llu network frames delivered\n",
                   outcome.end.to_string().c_str(), seconds, outcome.message.c_str(),
                   static_cast<unsigned long long>(outcome.async_positions),
                   static_cast<unsigned long long>(outcome.searched_positions),
                   static_cast<unsigned long long>(outcome.search_hits),
                   static_cast<unsigned long long>(outcome.kernel_return_stops),
                   static_cast<unsigned long long>(outcome.interrupts),
                   static_cast<unsigned long long>(outcome.digests_checked),
                   static_cast<unsigned long long>(outcome.net_frames));
    return 0;
  }
  std::fprintf(stderr, "rr-vmm: replay DIVERGED: %s\n", outcome.message.c_str());
  return 1;
}

}  // namespace

void add_replay_command(CLI::App& app) {
  auto options = std::make_shared<ReplayOptions>();
  CLI::App* replay = app.add_subcommand(
      "replay", "replay a recording; exit 0 when faithful to its end, 1 on divergence");
  replay->add_option("recording", options->recording, "recording directory")->required();
  replay->add_option("--key", options->key_file, "key file of a MAC'd or encrypted recording");
  replay->add_flag("--verify", options->verify, "check the whole log's integrity first");
  replay->add_flag("--force", options->force, "replay even on another CPU or device-model version");
  replay->add_flag("--quiet,-q", options->quiet, "no summary line");
  net::add_cooperative_replay_options(*replay, options->cooperation);
  replay->callback([options] {
    const int status = replay_command(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::cli
