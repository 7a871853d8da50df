#include "snapshot/snapshot_config.h"

#include <nlohmann/json.hpp>

#include "librr/error.h"

namespace vmm {
namespace {

using nlohmann::json;

template <class T>
T field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end())
    throw librr::FormatError(std::string("snapshot section 'machine': no field '") + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw librr::FormatError(std::string("snapshot section 'machine': field '") + name +
                             "' has the wrong type");
  }
}

}  // namespace

std::string SnapshotConfig::to_json() const {
  json clock_json = {{"mode", clock.virtual_time ? "virtual" : "host"}};
  if (clock.virtual_time) {
    clock_json["ns_per_exit"] = clock.ns_per_exit;
    clock_json["preempt_ns"] = clock.preempt_ns;
  }
  json out = {{"device_model_version", device_model_version},
              {"ram_bytes", ram_bytes},
              {"clock", clock_json},
              {"guest", guest},
              {"cmdline", cmdline},
              {"net", has_net}};
  if (!disk_image.empty())
    out["disk"] = {{"image", disk_image}, {"sectors", disk_sectors}, {"digest", disk_digest}};
  return out.dump(1);
}

SnapshotConfig SnapshotConfig::from_json(std::string_view text) {
  const json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!in.is_object()) throw librr::FormatError("snapshot section 'machine': not a JSON object");
  SnapshotConfig config;
  config.device_model_version = field<std::string>(in, "device_model_version");
  config.ram_bytes = field<uint64_t>(in, "ram_bytes");
  const json clock = field<json>(in, "clock");
  const std::string mode = field<std::string>(clock, "mode");
  if (mode != "host" && mode != "virtual")
    throw librr::FormatError("snapshot section 'machine': unknown clock mode '" + mode + "'");
  config.clock.virtual_time = mode == "virtual";
  if (config.clock.virtual_time) {
    config.clock.ns_per_exit = field<uint64_t>(clock, "ns_per_exit");
    config.clock.preempt_ns = field<uint64_t>(clock, "preempt_ns");
  }
  config.guest = field<std::string>(in, "guest");
  config.cmdline = field<std::string>(in, "cmdline");
  config.has_net = field<bool>(in, "net");
  if (in.contains("disk")) {
    const json disk = field<json>(in, "disk");
    config.disk_image = field<std::string>(disk, "image");
    config.disk_sectors = field<uint64_t>(disk, "sectors");
    config.disk_digest = field<std::string>(disk, "digest");
  }
  return config;
}

SnapshotConfig read_snapshot_config(const librr::SnapshotReader& reader) {
  const librr::SectionInfo* info = reader.find(kSnapshotConfigSection);
  if (!info)
    throw librr::FormatError(
        "it has no 'machine' section (a recording's initial snapshot? replay the recording "
        "instead)");
  if (info->kind != librr::SectionKind::kBlob || info->version != kSnapshotConfigVersion)
    throw librr::FormatError("snapshot section 'machine' has version " +
                             std::to_string(info->version) + ", this rr-vmm reads " +
                             std::to_string(kSnapshotConfigVersion));
  std::vector<uint8_t> bytes;
  try {
    bytes = reader.read_blob(kSnapshotConfigSection);
  } catch (const librr::FormatError& e) {
    throw librr::FormatError(std::string("snapshot section 'machine' is damaged: ") + e.what(),
                             e.offset());
  }
  return SnapshotConfig::from_json(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace vmm
