#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cli/record_command.h"
#include "clock/virtual_clock.h"
#include "librr/host_identity.h"
#include "librr/recording.h"
#include "librr/replayer.h"
#include "replay/replay_session.h"
#include "snapshot/machine_snapshot.h"

namespace vmm::cli {
namespace {

struct ReplayOptions {
  std::string recording;
  std::string key_file;
  bool verify = false;
  bool force = false;
  bool quiet = false;
};

// Refusals that --force overrides: another CPU or other device models can
// make a faithful replay impossible, but a user may want to see where.
void check_compatibility(const librr::Manifest& manifest, bool force) {
  std::vector<std::string> problems;
  const librr::HostIdentity here = librr::current_host_identity();
  if (!manifest.host.same_cpu(here))
    problems.push_back(
        fmt::format("recorded on a different CPU ({} family {} model {}; this is "
                    "{} family {} model {})",
                    manifest.host.model_name, manifest.host.family, manifest.host.model,
                    here.model_name, here.family, here.model));
  if (manifest.tools.device_model_version != kDeviceModelVersion)
    problems.push_back(fmt::format("recorded with device models version '{}', this rr-vmm has '{}'",
                                   manifest.tools.device_model_version, kDeviceModelVersion));
  for (const std::string& problem : problems) {
    if (!force) throw librr::Error(problem + " (use --force to try anyway)");
    std::fprintf(stderr, "rr-vmm: warning: %s\n", problem.c_str());
  }
}

uint64_t recorded_memory_size(const librr::Manifest& manifest) {
  auto it = manifest.guest.find("memory_bytes");
  if (it == manifest.guest.end()) throw librr::FormatError("manifest has no guest memory_bytes");
  return std::stoull(it->second);
}

// The recorded machine's virtio devices (record_command.cpp writes these).
// The NIC gets no backend: received frames come from the log and
// transmitted frames must not reach the network again. The disk's writes
// stay in memory: replay never touches the recorded run's overlay.
void configure_recorded_devices(const librr::Manifest& manifest, MachineConfig& config) {
  if (manifest.guest.count("net")) config.net_backend = "none";
  if (auto image = manifest.guest.find("disk_image"); image != manifest.guest.end()) {
    config.disk_image = image->second;
    config.disk_overlay.clear();
  }
}

int replay_command(const ReplayOptions& options) {
  std::optional<librr::Key> key;
  std::unique_ptr<librr::RecordingDir> dir;
  try {
    if (!options.key_file.empty()) key = librr::Key::load_file(options.key_file);
    dir = std::make_unique<librr::RecordingDir>(librr::RecordingDir::open(options.recording));
    check_compatibility(dir->manifest(), options.force);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  const librr::SnapshotCheck snapshot = dir->verify_snapshot(key);
  if (!snapshot.ok) {
    std::fprintf(stderr, "rr-vmm: %s\n", snapshot.message.c_str());
    return 1;
  }
  if (options.verify) {
    librr::LogReaderOptions log_options;
    log_options.key = key;
    librr::LogReader reader(dir->log_path(), log_options);
    const librr::VerifyReport report = reader.verify();
    if (report.problem && report.problem->kind != librr::LogProblemKind::missing_end) {
      std::fprintf(stderr, "rr-vmm: log damaged: %s\n", report.problem->to_string().c_str());
      return 1;
    }
  }

  librr::LogReaderOptions log_options;
  log_options.key = key;
  librr::Replayer replayer(dir->log_path(), log_options);
  VirtualClock clock;
  Timeline timeline;
  ReplaySerialInput input(replayer, timeline);
  MachineConfig config;
  config.ram_bytes = recorded_memory_size(dir->manifest());
  config.clock = &clock;
  config.serial_input = &input;
  std::unique_ptr<Machine> machine_owner;
  try {
    configure_recorded_devices(dir->manifest(), config);
    machine_owner = std::make_unique<Machine>(config);
    const auto sectors = dir->manifest().guest.find("disk_sectors");
    if (machine_owner->blk() && sectors != dir->manifest().guest.end() &&
        std::to_string(machine_owner->blk()->disk().capacity_sectors()) != sectors->second)
      throw librr::Error(
          fmt::format("disk image {} has {} sectors, the recording's had {}", config.disk_image,
                      machine_owner->blk()->disk().capacity_sectors(), sectors->second));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  Machine& machine = *machine_owner;
  restore_machine_snapshot(machine, dir->snapshot_path(), key);

  const auto started = std::chrono::steady_clock::now();
  ReplaySession session(machine, clock, replayer, timeline);
  const ReplayOutcome outcome = session.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (outcome.faithful) {
    if (!options.quiet)
      std::fprintf(stderr,
                   "rr-vmm: replay faithful to %s in %.2f s: %s; %llu async positions installed, "
                   "%llu interrupts and %llu state digests checked, %llu network frames "
                   "delivered\n",
                   outcome.end.to_string().c_str(), seconds, outcome.message.c_str(),
                   static_cast<unsigned long long>(outcome.async_positions),
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
  replay->callback([options] {
    const int status = replay_command(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::cli
