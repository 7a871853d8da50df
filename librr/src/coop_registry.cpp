#include "librr/coop_registry.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "librr/error.h"

namespace librr {
namespace {

constexpr size_t kMaxNameLength = 32;

// A key given inline ("key": 64 hex digits) or as a key file relative to the registry.
Key key_of(const nlohmann::json& entry, const std::filesystem::path& base,
           const std::string& where) {
  if (entry.contains("key")) {
    auto bytes = from_hex(entry.at("key").get<std::string>());
    if (bytes.size() != 32) throw FormatError(fmt::format("{}: key must be 64 hex digits", where));
    return Key::from_bytes(bytes);
  }
  if (entry.contains("key_file")) {
    std::filesystem::path file = entry.at("key_file").get<std::string>();
    return Key::load_file(file.is_absolute() ? file : base / file);
  }
  throw FormatError(fmt::format("{}: needs \"key\" or \"key_file\"", where));
}

std::string name_of(const nlohmann::json& entry, const std::string& where) {
  auto name = entry.at("name").get<std::string>();
  if (name.empty() || name.size() > kMaxNameLength)
    throw FormatError(fmt::format("{}: name must be 1 to {} characters", where, kMaxNameLength));
  return name;
}

}  // namespace

CoopRegistry CoopRegistry::load_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw_errno(fmt::format("cannot open registry {}", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path.parent_path(), path.string());
}

CoopRegistry CoopRegistry::parse(std::string_view json_text, const std::filesystem::path& base,
                                 std::string_view origin) {
  CoopRegistry registry;
  try {
    auto root = nlohmann::json::parse(json_text);
    const auto& gateway = root.at("gateway");
    std::string where = fmt::format("{}: gateway", origin);
    registry.gateway_name_ = name_of(gateway, where);
    registry.gateway_key_ = key_of(gateway, base, where);
    for (const auto& entry : root.value("hosts", nlohmann::json::array())) {
      where = fmt::format("{}: host #{}", origin, registry.hosts_.size() + 1);
      CooperatingHost host{name_of(entry, where), {}, {}, key_of(entry, base, where)};
      for (const auto& mac : entry.value("macs", nlohmann::json::array()))
        host.macs.push_back(MacAddress::parse(mac.get<std::string>()));
      for (const auto& ip : entry.value("ips", nlohmann::json::array()))
        host.ips.push_back(IpAddress::parse(ip.get<std::string>()));
      if (host.name == registry.gateway_name_ || registry.find(host.name))
        throw FormatError(fmt::format("{}: name '{}' is used twice", where, host.name));
      registry.hosts_.push_back(std::move(host));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: {}", origin, e.what()));
  }
  return registry;
}

const CooperatingHost* CoopRegistry::find(std::string_view name) const {
  for (const auto& host : hosts_)
    if (host.name == name) return &host;
  return nullptr;
}

const CooperatingHost* CoopRegistry::owner_of(const MacAddress& mac) const {
  for (const auto& host : hosts_)
    for (const auto& candidate : host.macs)
      if (candidate == mac) return &host;
  return nullptr;
}

const CooperatingHost* CoopRegistry::owner_of(const IpAddress& ip) const {
  for (const auto& host : hosts_)
    for (const auto& candidate : host.ips)
      if (candidate == ip) return &host;
  return nullptr;
}

}  // namespace librr
