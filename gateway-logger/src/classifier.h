#pragma once
// Decides, for one captured frame, whether it enters the LAN, leaves it,
// stays inside it or never touches it, and whether this copy is the one to
// log. See docs/gateway.md ("Classification") for the rules and why.
#include <cstdint>
#include <string_view>
#include <vector>

#include "ip_prefix.h"
#include "librr/ethernet_frame.h"
#include "librr/net_address.h"

namespace gateway {

enum class InterfaceRole : uint8_t { kLan, kWan };

// Where the kernel says the frame went, from sll_pkttype (PACKET_HOST, ...).
enum class LinkDirection : uint8_t { kReceived, kSent };

enum class Direction : uint8_t {
  kIncoming,  // from outside the LAN into it
  kOutgoing,  // from the LAN to outside
  kInternal,  // between LAN addresses (recreated by cooperating hosts, not logged)
  kExternal,  // neither end in the LAN (the gateway's own upstream traffic)
};

std::string_view to_string(Direction direction);
std::string_view to_string(InterfaceRole role);

struct Classification {
  Direction direction = Direction::kExternal;
  // True for the one copy of an incoming frame that is logged: the copy the
  // gateway transmits on a LAN interface (the exact bytes LAN hosts receive),
  // or, when no LAN interface is captured, the copy received on a WAN interface.
  bool log = false;
};

class Classifier {
 public:
  Classifier(std::vector<Prefix> lan_prefixes, bool lan_interface_captured)
      : lan_prefixes_(std::move(lan_prefixes)), lan_interface_captured_(lan_interface_captured) {}

  Classification classify(const librr::ParsedEthernetFrame& frame, InterfaceRole role,
                          LinkDirection link) const;
  bool in_lan(const librr::IpAddress& address) const;

 private:
  Direction direction_of_ip(const librr::ParsedEthernetFrame& frame, InterfaceRole role) const;
  Direction direction_by_role(InterfaceRole role, LinkDirection link) const;

  std::vector<Prefix> lan_prefixes_;
  bool lan_interface_captured_;
};

}  // namespace gateway
