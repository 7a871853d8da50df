#include "classifier.h"

namespace gateway {

std::string_view to_string(Direction direction) {
  switch (direction) {
    case Direction::kIncoming:
      return "incoming";
    case Direction::kOutgoing:
      return "outgoing";
    case Direction::kInternal:
      return "internal";
    case Direction::kExternal:
      return "external";
  }
  return "unknown";
}

std::string_view to_string(InterfaceRole role) {
  return role == InterfaceRole::kLan ? "lan" : "wan";
}

bool Classifier::in_lan(const librr::IpAddress& address) const {
  for (const auto& prefix : lan_prefixes_)
    if (prefix.contains(address)) return true;
  return false;
}

Direction Classifier::direction_of_ip(const librr::ParsedEthernetFrame& frame,
                                      InterfaceRole role) const {
  bool source_inside = in_lan(*frame.source_ip);
  // A broadcast or multicast destination reaches the segment the frame is on.
  bool destination_inside = frame.destination_ip->is_multicast_or_broadcast()
                                ? role == InterfaceRole::kLan
                                : in_lan(*frame.destination_ip);
  if (source_inside && destination_inside) return Direction::kInternal;
  if (source_inside) return Direction::kOutgoing;
  if (destination_inside) return Direction::kIncoming;
  return Direction::kExternal;
}

// Frames without usable IP addresses: what the gateway transmits into the LAN
// enters it (its ARP replies are input to LAN hosts); what LAN hosts send stays
// inside; nothing on the WAN side reaches the LAN by itself (the gateway routes).
Direction Classifier::direction_by_role(InterfaceRole role, LinkDirection link) const {
  if (role == InterfaceRole::kLan)
    return link == LinkDirection::kSent ? Direction::kIncoming : Direction::kInternal;
  return Direction::kExternal;
}

Classification Classifier::classify(const librr::ParsedEthernetFrame& frame, InterfaceRole role,
                                    LinkDirection link) const {
  Classification result;
  result.direction = frame.status == librr::EthernetFrameStatus::kIp
                         ? direction_of_ip(frame, role)
                         : direction_by_role(role, link);
  if (result.direction != Direction::kIncoming) return result;
  if (role == InterfaceRole::kLan)
    result.log = link == LinkDirection::kSent;
  else
    result.log = link == LinkDirection::kReceived && !lan_interface_captured_;
  return result;
}

}  // namespace gateway
