#include "replay/replay_machine.h"

#include <fmt/format.h>

#include <vector>

#include "cli/record_command.h"
#include "librr/host_identity.h"
#include "machine/host_cpu_pin.h"
#include "snapshot/machine_snapshot.h"

namespace vmm {
namespace {

// Refusals that `force` overrides: another CPU, other device models or replay
// rules this rr-vmm does not know can make a faithful replay impossible, but a
// user may want to see where. Returns the rules to replay with.
ReplayRules check_compatibility(const librr::Manifest& manifest,
                                const ReplayMachineOptions& options) {
  std::vector<std::string> problems;
  const librr::HostIdentity here = librr::current_host_identity();
  if (!manifest.host.same_cpu(here))
    problems.push_back(
        fmt::format("recorded on a different CPU ({} family {} model {}; this is "
                    "{} family {} model {})",
                    manifest.host.model_name, manifest.host.family, manifest.host.model,
                    here.model_name, here.family, here.model));
  if (manifest.tools.device_model_version != cli::kDeviceModelVersion)
    problems.push_back(fmt::format("recorded with device models version '{}', this rr-vmm has '{}'",
                                   manifest.tools.device_model_version, cli::kDeviceModelVersion));
  const std::optional<ReplayRules> rules = ReplayRules::from_manifest(manifest.tools);
  if (!rules)
    problems.push_back(
        fmt::format("recorded under replay rules version '{}', this rr-vmm knows versions 1 to {} "
                    "(trying its own)",
                    manifest.tools.replay_rules_version, ReplayRules::current().version));
  for (const std::string& problem : problems) {
    if (!options.force) throw librr::Error(problem + " (use --force to try anyway)");
    if (options.warn) options.warn(problem);
  }
  return rules.value_or(ReplayRules::current());
}

// The vCPU thread on the host CPU record ran it on (machine/host_cpu_pin.h),
// where the recording names one; a warning where this process may not run
// there (another host, or a narrower affinity): replay may then diverge in
// stretches of native user code it re-executes.
void pin_to_recorded_host_cpu(const librr::Manifest& manifest,
                              const ReplayMachineOptions& options) {
  const auto it = manifest.guest.find(kVcpuHostCpuKey);
  if (it == manifest.guest.end()) return;
  int cpu = -1;
  try {
    cpu = std::stoi(it->second);
  } catch (const std::exception&) {
    throw RecordingDamaged(
        fmt::format("manifest guest {} '{}' is no CPU number", kVcpuHostCpuKey, it->second));
  }
  if (const std::optional<std::string> why = pin_to_host_cpu(cpu); why && options.warn)
    options.warn(
        fmt::format("recorded on host CPU {}, not replaying there ({}): native user "
                    "code that reads CPUID may replay differently",
                    cpu, *why));
}

uint64_t recorded_memory_size(const librr::Manifest& manifest) {
  auto it = manifest.guest.find("memory_bytes");
  if (it == manifest.guest.end()) throw RecordingDamaged("manifest has no guest memory_bytes");
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

void check_disk_size(const librr::Manifest& manifest, Machine& machine, const std::string& image) {
  const auto sectors = manifest.guest.find("disk_sectors");
  if (machine.blk() && sectors != manifest.guest.end() &&
      std::to_string(machine.blk()->disk().capacity_sectors()) != sectors->second)
    throw librr::Error(fmt::format("disk image {} has {} sectors, the recording's had {}", image,
                                   machine.blk()->disk().capacity_sectors(), sectors->second));
}

}  // namespace

ReplayMachine::ReplayMachine(const std::filesystem::path& recording, ReplayMachineOptions options)
    : options_(std::move(options)) {
  dir_ = std::make_unique<librr::RecordingDir>(librr::RecordingDir::open(recording));
  const ReplayRules rules = check_compatibility(dir_->manifest(), options_);
  pin_to_recorded_host_cpu(dir_->manifest(), options_);
  const librr::SnapshotCheck snapshot = dir_->verify_snapshot(options_.key);
  if (!snapshot.ok) throw RecordingDamaged(snapshot.message);

  replayer_ = std::make_unique<librr::Replayer>(dir_->log_path(), log_options());
  serial_input_ = std::make_unique<ReplaySerialInput>(*replayer_, timeline_);
  MachineConfig config;
  config.ram_bytes = recorded_memory_size(dir_->manifest());
  config.clock = &clock_;
  config.serial_input = serial_input_.get();
  config.serial_output = options_.serial_output;
  configure_recorded_devices(dir_->manifest(), config);
  // Searched stops of log format 2.12 name the pages written since the
  // previous position by implication: replay tracks them as record did.
  config.track_dirty_pages = true;
  machine_ = std::make_unique<Machine>(config);
  check_disk_size(dir_->manifest(), *machine_, config.disk_image);
  try {
    restore_machine_snapshot(*machine_, dir_->snapshot_path(), options_.key);
  } catch (const librr::FormatError& e) {
    throw RecordingDamaged(fmt::format("{}: {}", dir_->snapshot_path().string(), e.what()));
  }
  session_ = std::make_unique<ReplaySession>(*machine_, clock_, *replayer_, timeline_, rules);
}

ReplayMachine::~ReplayMachine() = default;

librr::LogReaderOptions ReplayMachine::log_options() const {
  librr::LogReaderOptions log_options;
  log_options.key = options_.key;
  return log_options;
}

void ReplayMachine::reposition_log(uint64_t index) {
  // A fresh reader drops the record the old one had peeked at; the object
  // stays in place because the serial input and the session refer to it.
  *replayer_ = librr::Replayer(dir_->log_path(), log_options());
  log_base_index_ = index;
  if (index > 0 && !replayer_->reader().seek_to_record(index))
    throw librr::FormatError(
        fmt::format("{}: record {} is not in the log's index", dir_->log_path().string(), index));
}

}  // namespace vmm
