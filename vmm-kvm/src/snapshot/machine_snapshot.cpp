#include "snapshot/machine_snapshot.h"

#include <string>

#include "librr/bytes.h"
#include "librr/snapshot.h"

namespace vmm {
namespace {

constexpr const char* kRamSection = "ram";
constexpr const char* kVcpuSection = "vcpu0";
constexpr const char* kClockSection = "clock";

std::string overlay_section(const virtio::VirtioBlk& blk) {
  return std::string(blk.name()) + "-overlay";
}

void expect_version(const librr::SnapshotReader& reader, std::string_view name) {
  const librr::SectionInfo* info = reader.find(name);
  if (!info) throw librr::FormatError("snapshot has no section '" + std::string(name) + "'");
  if (info->version != kMachineStateVersion)
    throw librr::FormatError("snapshot section '" + std::string(name) + "' has version " +
                             std::to_string(info->version) + ", this rr-vmm reads " +
                             std::to_string(kMachineStateVersion));
}

// Reads the blob `name` and hands it to `load`, which must consume all of
// it. Any format problem is reported as a damaged section of that name.
template <class Load>
void load_section(const librr::SnapshotReader& reader, std::string_view name, Load&& load) {
  expect_version(reader, name);
  try {
    const std::vector<uint8_t> blob = reader.read_blob(name);
    librr::ByteReader in(blob, name);
    load(in);
    in.expect_end();
  } catch (const librr::KeyError&) {
    throw;
  } catch (const librr::SystemError&) {
    throw;
  } catch (const librr::FormatError& e) {
    throw librr::FormatError("snapshot section '" + std::string(name) + "' is damaged: " + e.what(),
                             e.offset());
  } catch (const librr::Error& e) {  // a device rejecting its state
    throw librr::FormatError("snapshot section '" + std::string(name) +
                             "' is damaged: " + e.what());
  }
}

}  // namespace

librr::Digest save_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                                    const std::optional<librr::Key>& key,
                                    const SnapshotConfig* config,
                                    librr::DeferredSync* deferred_sync) {
  librr::SnapshotWriter writer(path, librr::SnapshotWriteOptions{key, 3, deferred_sync});
  if (config) {
    const std::string json = config->to_json();
    writer.add_blob(kSnapshotConfigSection, kSnapshotConfigVersion,
                    {reinterpret_cast<const uint8_t*>(json.data()), json.size()});
  }
  librr::ByteWriter vcpu;
  machine.save_vcpu_state().save(vcpu);
  writer.add_blob(kVcpuSection, kMachineStateVersion, vcpu.data());
  librr::ByteWriter clock;
  clock.u64(machine.clock().now_ns());
  writer.add_blob(kClockSection, kMachineStateVersion, clock.data());
  for (const Device* device : machine.devices()) {
    librr::ByteWriter state;
    device->save(state);
    writer.add_blob(device->name(), kMachineStateVersion, state.data());
  }
  if (const virtio::VirtioBlk* blk = machine.blk()) {
    librr::ByteWriter overlay;
    blk->disk().save_overlay(overlay);
    writer.add_blob(overlay_section(*blk), kMachineStateVersion, overlay.data());
  }
  const GuestMemory memory = machine.memory();
  writer.add_memory(kRamSection, 0, memory.host_base(), memory.size());
  return writer.finish();
}

void restore_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                              const std::optional<librr::Key>& key) {
  restore_machine_snapshot(machine, librr::SnapshotReader::open(path, key));
}

void restore_machine_snapshot(Machine& machine, const librr::SnapshotReader& reader,
                              bool ram_is_zero) {
  const GuestMemory memory = machine.memory();
  const librr::SectionInfo* ram = reader.find(kRamSection);
  if (!ram || ram->size != memory.size())
    throw librr::FormatError(
        "snapshot guest memory is " + (ram ? std::to_string(ram->size >> 20) + " MiB" : "missing") +
        ", this machine has " + std::to_string(memory.size() >> 20) + " MiB (use the same --mem)");
  try {
    reader.read_memory(kRamSection, memory.host_base(), memory.size(),
                       ram_is_zero ? librr::SnapshotReader::ZeroPages::kLeaveUntouched
                                   : librr::SnapshotReader::ZeroPages::kFill);
  } catch (const librr::KeyError&) {
    throw;
  } catch (const librr::FormatError& e) {
    throw librr::FormatError(std::string("snapshot section 'ram' is damaged: ") + e.what(),
                             e.offset());
  }

  for (Device* device : machine.devices())
    load_section(reader, device->name(), [&](librr::ByteReader& in) { device->load(in); });
  // After the device: load_overlay() replaces the map the device state loaded
  // and fills the overlay with the sectors written before the snapshot.
  if (virtio::VirtioBlk* blk = machine.blk(); blk && reader.find(overlay_section(*blk)))
    load_section(reader, overlay_section(*blk),
                 [&](librr::ByteReader& in) { blk->disk().load_overlay(in); });
  load_section(reader, kClockSection,
               [&](librr::ByteReader& in) { machine.clock().resume_at(in.u64()); });
  load_section(reader, kVcpuSection,
               [&](librr::ByteReader& in) { machine.restore_vcpu_state(VcpuState::load(in)); });
}

}  // namespace vmm
