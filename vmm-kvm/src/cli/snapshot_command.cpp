#include "cli/snapshot_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include "cli/snapshot_session.h"
#include "librr/snapshot.h"

namespace vmm::cli {
namespace {

struct InfoOptions {
  std::string path;
  std::string key_file;
};

const char* kind_name(librr::SectionKind kind) {
  return kind == librr::SectionKind::kMemory ? "memory" : "blob";
}

int snapshot_info(const InfoOptions& options) {
  try {
    std::optional<librr::Key> key;
    if (!options.key_file.empty()) key = librr::Key::load_file(options.key_file);
    RunOptions no_overrides;
    const SnapshotConfig config = check_snapshot(options.path, key, no_overrides);
    const librr::SnapshotReader reader = librr::SnapshotReader::open(options.path, key);
    std::printf("snapshot %s: intact, %s, blake2b %s\n", options.path.c_str(),
                reader.encrypted() ? "encrypted" : "not encrypted",
                librr::to_hex(reader.stored_digest()).c_str());
    std::printf("guest: %s\ncommand line: %s\nRAM: %llu MiB, clock: %s, device models: %s\n",
                config.guest.c_str(), config.cmdline.c_str(),
                static_cast<unsigned long long>(config.ram_bytes >> 20),
                config.clock.virtual_time ? "virtual" : "host",
                config.device_model_version.c_str());
    if (!config.disk_image.empty())
      std::printf("disk: %s (%llu sectors, blake2b %s)\n", config.disk_image.c_str(),
                  static_cast<unsigned long long>(config.disk_sectors), config.disk_digest.c_str());
    for (const librr::SectionInfo& section : reader.sections())
      std::printf("  %-16s %-6s v%u %12llu bytes raw %12llu stored\n", section.name.c_str(),
                  kind_name(section.kind), section.version,
                  static_cast<unsigned long long>(section.size),
                  static_cast<unsigned long long>(section.stored_size));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
}

}  // namespace

void add_snapshot_command(CLI::App& app) {
  CLI::App* snapshot = app.add_subcommand(
      "snapshot", "inspect machine snapshots (write them with run --snapshot-out)");
  snapshot->require_subcommand(1);
  auto options = std::make_shared<InfoOptions>();
  CLI::App* info =
      snapshot->add_subcommand("info", "check a snapshot end to end and list what it holds");
  info->add_option("file", options->path, "snapshot file")->required();
  info->add_option("--key", options->key_file, "key file of an encrypted snapshot");
  info->callback([options] {
    const int status = snapshot_info(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::cli
