#pragma once
// Parses just enough of an Ethernet frame to classify it: MAC addresses,
// EtherType (after up to two VLAN tags) and IPv4/IPv6 source and destination.
// Every read is bounded by the captured length; frames are hostile input.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "librr/net_address.h"

namespace librr {

enum class EthernetFrameStatus : uint8_t {
  kIp,           // IPv4 or IPv6 with a complete, consistent network header
  kNonIp,        // ARP, LLDP, ...: classified by interface role
  kRunt,         // shorter than an Ethernet header
  kTruncatedIp,  // IP EtherType but the capture ends inside the IP header
  kMalformedIp,  // IP header fields are inconsistent (version, IHL, ...)
};

std::string_view to_string(EthernetFrameStatus status);

struct ParsedEthernetFrame {
  EthernetFrameStatus status = EthernetFrameStatus::kRunt;
  MacAddress destination_mac;
  MacAddress source_mac;
  uint16_t ethertype = 0;  // after VLAN tags
  unsigned vlan_tags = 0;
  std::optional<IpAddress> source_ip;  // set only when status == kIp
  std::optional<IpAddress> destination_ip;
  uint8_t ip_protocol = 0;
  // The capture holds fewer bytes than the frame had on the wire (snaplen).
  bool capture_truncated = false;
  // Larger on the wire than any Ethernet frame we expect (jumbo + headers).
  bool oversized = false;
};

// Largest frame not flagged as oversized: 9000-byte jumbo MTU plus Ethernet and two VLAN tags.
inline constexpr uint32_t kMaxExpectedEthernetFrameLength = 9000 + 14 + 8;

// `captured` are the bytes we have; `wire_length` is the frame's length on the wire.
ParsedEthernetFrame parse_ethernet_frame(std::span<const uint8_t> captured, uint32_t wire_length);

}  // namespace librr
