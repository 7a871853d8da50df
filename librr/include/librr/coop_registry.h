#pragma once
// The registry of cooperating hosts: who they are on the wire (MAC and IP
// addresses) and the key each shares with the gateway. JSON format documented
// in schemas/gateway-protocol.md.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/net_address.h"

namespace librr {

struct CooperatingHost {
  std::string name;
  std::vector<MacAddress> macs;
  std::vector<IpAddress> ips;
  Key key;
};

class CoopRegistry {
 public:
  // Throws FormatError naming the file and the entry on any problem.
  static CoopRegistry load_file(const std::filesystem::path& path);
  static CoopRegistry parse(std::string_view json_text, const std::filesystem::path& base_directory,
                            std::string_view origin = "registry");

  const std::string& gateway_name() const { return gateway_name_; }
  const Key& gateway_key() const { return *gateway_key_; }
  const std::vector<CooperatingHost>& hosts() const { return hosts_; }
  const CooperatingHost* find(std::string_view name) const;
  // The cooperating host whose MAC or IP address the frame claims as its source.
  const CooperatingHost* owner_of(const MacAddress& mac) const;
  const CooperatingHost* owner_of(const IpAddress& ip) const;

 private:
  std::string gateway_name_ = "gateway";
  std::optional<Key> gateway_key_;
  std::vector<CooperatingHost> hosts_;
};

}  // namespace librr
