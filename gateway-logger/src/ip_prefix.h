#pragma once
// CIDR prefixes (the gateway's LAN ranges), matched against frame addresses.
#include <string>
#include <string_view>

#include "librr/net_address.h"

namespace gateway {

// A CIDR prefix such as 10.0.0.0/8 or fd00::/64.
class Prefix {
 public:
  static Prefix parse(std::string_view text);
  bool contains(const librr::IpAddress& address) const;
  std::string to_string() const;

 private:
  librr::IpAddress network_;
  unsigned length_ = 0;  // in bits of the 128-bit (mapped) form
};

}  // namespace gateway
