#include "librr/ethernet_frame.h"

#include <algorithm>

namespace librr {
namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeQinQ = 0x88a8;
constexpr size_t kEthernetHeader = 14;
constexpr size_t kVlanTag = 4;
constexpr size_t kIpv4MinHeader = 20;
constexpr size_t kIpv6Header = 40;

uint16_t be16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

void parse_ipv4(std::span<const uint8_t> ip, ParsedEthernetFrame& frame) {
  if (ip.size() < kIpv4MinHeader) {
    frame.status = EthernetFrameStatus::kTruncatedIp;
    return;
  }
  unsigned version = ip[0] >> 4;
  size_t header_length = size_t{ip[0] & 0x0fu} * 4;
  uint16_t total_length = be16(ip, 2);
  if (version != 4 || header_length < kIpv4MinHeader || total_length < header_length) {
    frame.status = EthernetFrameStatus::kMalformedIp;
    return;
  }
  if (ip.size() < header_length) {
    frame.status = EthernetFrameStatus::kTruncatedIp;
    return;
  }
  frame.status = EthernetFrameStatus::kIp;
  frame.ip_protocol = ip[9];
  frame.source_ip = IpAddress::v4(ip.subspan<12, 4>());
  frame.destination_ip = IpAddress::v4(ip.subspan<16, 4>());
}

void parse_ipv6(std::span<const uint8_t> ip, ParsedEthernetFrame& frame) {
  if (ip.size() < kIpv6Header) {
    frame.status = EthernetFrameStatus::kTruncatedIp;
    return;
  }
  if ((ip[0] >> 4) != 6) {
    frame.status = EthernetFrameStatus::kMalformedIp;
    return;
  }
  frame.status = EthernetFrameStatus::kIp;
  frame.ip_protocol = ip[6];  // next header; extension headers are not followed
  frame.source_ip = IpAddress::v6(ip.subspan<8, 16>());
  frame.destination_ip = IpAddress::v6(ip.subspan<24, 16>());
}

}  // namespace

std::string_view to_string(EthernetFrameStatus status) {
  switch (status) {
    case EthernetFrameStatus::kIp:
      return "ip";
    case EthernetFrameStatus::kNonIp:
      return "non-ip";
    case EthernetFrameStatus::kRunt:
      return "runt";
    case EthernetFrameStatus::kTruncatedIp:
      return "truncated-ip";
    case EthernetFrameStatus::kMalformedIp:
      return "malformed-ip";
  }
  return "unknown";
}

ParsedEthernetFrame parse_ethernet_frame(std::span<const uint8_t> captured, uint32_t wire_length) {
  ParsedEthernetFrame frame;
  frame.capture_truncated = captured.size() < wire_length;
  frame.oversized = wire_length > kMaxExpectedEthernetFrameLength ||
                    captured.size() > kMaxExpectedEthernetFrameLength;
  if (captured.size() < kEthernetHeader) return frame;  // kRunt
  std::copy_n(captured.begin(), 6, frame.destination_mac.bytes.begin());
  std::copy_n(captured.begin() + 6, 6, frame.source_mac.bytes.begin());
  size_t offset = 12;
  uint16_t ethertype = be16(captured, offset);
  while ((ethertype == kEtherTypeVlan || ethertype == kEtherTypeQinQ) && frame.vlan_tags < 2) {
    if (captured.size() < offset + kVlanTag + 2) return frame;  // kRunt: cut inside the tags
    offset += kVlanTag;
    ++frame.vlan_tags;
    ethertype = be16(captured, offset);
  }
  frame.ethertype = ethertype;
  auto payload = captured.subspan(offset + 2);
  frame.status = EthernetFrameStatus::kNonIp;
  if (ethertype == kEtherTypeIpv4)
    parse_ipv4(payload, frame);
  else if (ethertype == kEtherTypeIpv6)
    parse_ipv6(payload, frame);
  return frame;
}

}  // namespace librr
