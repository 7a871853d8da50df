#include "cli/snapshot_session.h"

#include <fmt/format.h>

#include <filesystem>

#include "block/image_digest.h"
#include "cli/record_command.h"
#include "snapshot/machine_snapshot.h"

namespace vmm::cli {
namespace {

namespace fs = std::filesystem;

// The RTC's wall time at boot under --clock virtual (2026-01-01 00:00:00
// UTC): with host time out of the guest's view, two boots are identical.
constexpr int64_t kVirtualRtcBaseUnixSeconds = 1767225600;

ClockSettings clock_settings(const RunOptions& options) {
  ClockSettings clock;
  if (options.clock == "virtual")
    clock.virtual_time = true;
  else if (options.clock != "host")
    throw librr::Error("--clock " + options.clock + ": expected host or virtual");
  if (options.preempt_ms < 0) throw librr::Error("--preempt-ms must not be negative");
  if (options.preempt_ms > 0 && !clock.virtual_time)
    throw librr::Error("--preempt-ms needs --clock virtual");
  clock.preempt_ns = static_cast<uint64_t>(options.preempt_ms * 1e6);
  return clock;
}

// Puts a serial:TEXT watcher in front of the console when a trigger asks for one.
SerialOutput& console_chain(SnapshotSession& session,
                            const std::vector<SnapshotTrigger>& triggers) {
  std::vector<std::string> texts;
  for (const SnapshotTrigger& trigger : triggers)
    if (trigger.kind == SnapshotTrigger::Kind::kSerialText) texts.push_back(trigger.text);
  if (texts.empty()) return *session.console;
  session.watcher = std::make_unique<TextWatchingOutput>(*session.console, texts, [&session] {
    if (session.requests) session.requests->request();
  });
  return *session.watcher;
}

// Names the section a damaged byte belongs to.
std::string describe_damage(const librr::SnapshotReader& reader,
                            const librr::SnapshotVerifyReport& report) {
  const auto offset = static_cast<uint64_t>(report.offset);
  for (const librr::SectionInfo& section : reader.sections())
    if (report.offset >= 0 && offset >= section.file_offset &&
        offset < section.file_offset + section.stored_size)
      return fmt::format("section '{}' is damaged ({} at offset {}): {}", section.name,
                         librr::to_string(report.problem), report.offset, report.message);
  return fmt::format("damaged ({} at offset {}): {}", librr::to_string(report.problem),
                     report.offset, report.message);
}

void check_disk(const SnapshotConfig& config, const RunOptions& options) {
  if (config.disk_image.empty()) {
    if (!options.disk.empty()) throw librr::Error("--disk: the snapshot's machine has no disk");
    return;
  }
  const std::string image = options.disk.empty() ? config.disk_image : options.disk;
  std::error_code error;
  const uint64_t bytes = fs::file_size(image, error);
  if (error) throw librr::Error("disk image " + image + ": " + error.message());
  if (bytes / block::kSectorBytes != config.disk_sectors)
    throw librr::Error(fmt::format("disk image {} has {} sectors, the snapshot's had {}", image,
                                   bytes / block::kSectorBytes, config.disk_sectors));
  if (block::image_digest_hex(image) != config.disk_digest)
    throw librr::Error("disk image " + image +
                       " changed since the snapshot was taken (its BLAKE2b digest differs); the "
                       "snapshot holds only the overlay's sectors");
}

}  // namespace

std::unique_ptr<SnapshotSession> boot_session(const RunOptions& options,
                                              const std::vector<SnapshotTrigger>& triggers) {
  auto session = std::make_unique<SnapshotSession>();
  const ClockSettings clock = clock_settings(options);
  session->console = std::make_unique<FdSerialOutput>(1);
  SerialOutput& output = console_chain(*session, triggers);
  if (clock.virtual_time) session->virtual_clock = std::make_unique<VirtualClock>();
  PreparedRun prepared = prepare_machine(options, {}, [&](MachineConfig& config) {
    config.serial_output = &output;
    if (session->virtual_clock) {
      config.clock = session->virtual_clock.get();
      config.rtc_base_unix_seconds = kVirtualRtcBaseUnixSeconds;
    }
  });
  session->input = std::move(prepared.input);
  session->machine = std::move(prepared.machine);
  Machine& machine = *session->machine;

  SnapshotConfig& config = session->config;
  config.device_model_version = kDeviceModelVersion;
  config.ram_bytes = machine.memory().size();
  config.clock = clock;
  config.guest = prepared.what;
  config.cmdline = prepared.cmdline;
  config.has_net = machine.net() != nullptr;
  if (machine.blk()) {
    config.disk_image = fs::absolute(options.disk).string();
    config.disk_sectors = machine.blk()->disk().capacity_sectors();
    config.disk_digest = block::image_digest_hex(options.disk);
  }
  return session;
}

SnapshotConfig check_snapshot(const std::string& path, const std::optional<librr::Key>& key,
                              const RunOptions& options) {
  if (!fs::exists(path)) throw librr::Error("snapshot " + path + ": no such file");
  const librr::SnapshotReader reader = librr::SnapshotReader::open(path, key);
  const librr::SnapshotVerifyReport report = reader.verify();
  if (!report.ok)
    throw librr::FormatError("snapshot " + path + ": " + describe_damage(reader, report));
  SnapshotConfig config;
  try {
    config = read_snapshot_config(reader);
  } catch (const librr::Error& e) {
    throw librr::FormatError("snapshot " + path + ": " + e.what());
  }
  if (config.device_model_version != kDeviceModelVersion)
    throw librr::Error(
        fmt::format("snapshot {} was written by device models version '{}', this rr-vmm has '{}'",
                    path, config.device_model_version, kDeviceModelVersion));
  if (!options.net.empty() && !config.has_net)
    throw librr::Error("--net: the snapshot's machine has no network device");
  check_disk(config, options);
  return config;
}

std::unique_ptr<SnapshotSession> restore_session(
    const std::string& path, const std::optional<librr::Key>& key, const SnapshotConfig& config,
    const RunOptions& options, const std::vector<SnapshotTrigger>& triggers,
    const ConsoleTarget& console, const std::string& overlay_path) {
  auto session = std::make_unique<SnapshotSession>();
  session->config = config;
  if (console.prefix.empty())
    session->console = std::make_unique<FdSerialOutput>(console.fd);
  else
    session->console = std::make_unique<PrefixedLineOutput>(console.fd, console.prefix);
  SerialOutput& output = console_chain(*session, triggers);
  session->input = open_serial_input(options.serial_in);
  if (config.clock.virtual_time) session->virtual_clock = std::make_unique<VirtualClock>();

  MachineConfig machine_config;
  machine_config.ram_bytes = config.ram_bytes;
  machine_config.serial_output = &output;
  machine_config.serial_input = session->input.get();
  machine_config.clock = session->virtual_clock.get();  // null: host time
  if (config.has_net) machine_config.net_backend = options.net.empty() ? "none" : options.net;
  if (!config.disk_image.empty()) {
    machine_config.disk_image = options.disk.empty() ? config.disk_image : options.disk;
    machine_config.disk_overlay = overlay_path;
  }
  session->machine = std::make_unique<Machine>(machine_config);
  // The machine was just built: its RAM is an untouched anonymous mapping.
  restore_machine_snapshot(*session->machine, librr::SnapshotReader::open(path, key),
                           /*ram_is_zero=*/true);
  // Completes nothing (the snapshot was settled) but loads kvm_run's
  // if_flag/ready flags from the restored registers for the first injection.
  session->machine->settle_vcpu();
  return session;
}

}  // namespace vmm::cli
