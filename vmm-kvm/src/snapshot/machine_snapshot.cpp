#include "snapshot/machine_snapshot.h"

#include <string>

#include "librr/bytes.h"
#include "librr/snapshot.h"

namespace vmm {
namespace {

constexpr const char* kRamSection = "ram";
constexpr const char* kVcpuSection = "vcpu0";
constexpr const char* kClockSection = "clock";

void expect_version(const librr::SnapshotReader& reader, std::string_view name) {
  const librr::SectionInfo* info = reader.find(name);
  if (!info) throw librr::FormatError("snapshot has no section '" + std::string(name) + "'");
  if (info->version != kMachineStateVersion)
    throw librr::FormatError("snapshot section '" + std::string(name) + "' has version " +
                             std::to_string(info->version) + ", this rr-vmm reads " +
                             std::to_string(kMachineStateVersion));
}

}  // namespace

librr::Digest save_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                                    const std::optional<librr::Key>& key) {
  librr::SnapshotWriter writer(path, librr::SnapshotWriteOptions{key, 3});
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
  const GuestMemory memory = machine.memory();
  writer.add_memory(kRamSection, 0, memory.host_base(), memory.size());
  return writer.finish();
}

void restore_machine_snapshot(Machine& machine, const std::filesystem::path& path,
                              const std::optional<librr::Key>& key) {
  const librr::SnapshotReader reader = librr::SnapshotReader::open(path, key);
  const GuestMemory memory = machine.memory();
  const librr::SectionInfo* ram = reader.find(kRamSection);
  if (!ram || ram->size != memory.size())
    throw librr::FormatError(
        "snapshot guest memory is " + (ram ? std::to_string(ram->size >> 20) + " MiB" : "missing") +
        ", this machine has " + std::to_string(memory.size() >> 20) + " MiB (use the same --mem)");
  reader.read_memory(kRamSection, memory.host_base(), memory.size());

  for (Device* device : machine.devices()) {
    expect_version(reader, device->name());
    const std::vector<uint8_t> blob = reader.read_blob(device->name());
    librr::ByteReader in(blob, device->name());
    device->load(in);
    in.expect_end();
  }
  expect_version(reader, kClockSection);
  const std::vector<uint8_t> clock_blob = reader.read_blob(kClockSection);
  librr::ByteReader clock(clock_blob, kClockSection);
  machine.clock().resume_at(clock.u64());
  clock.expect_end();

  expect_version(reader, kVcpuSection);
  const std::vector<uint8_t> vcpu_blob = reader.read_blob(kVcpuSection);
  librr::ByteReader vcpu(vcpu_blob, kVcpuSection);
  machine.restore_vcpu_state(VcpuState::load(vcpu));
  vcpu.expect_end();
}

}  // namespace vmm
