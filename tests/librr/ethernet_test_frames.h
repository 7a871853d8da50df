#pragma once
// Ethernet frames built byte by byte for the parser, classifier and
// cooperative-protocol tests (librr's and rr-gateway's). Checksums are not
// valid: nothing under test checks them.
#include <array>
#include <cstdint>
#include <vector>

#include "librr/net_address.h"

namespace librr_test {

// An Ethernet frame carrying IPv4/UDP between the given addresses, padded with
// `payload` (not a valid checksum: the gateway does not check them).
inline std::vector<uint8_t> ipv4_udp_frame(std::array<uint8_t, 4> source,
                                           std::array<uint8_t, 4> destination,
                                           const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  uint16_t total = static_cast<uint16_t>(20 + 8 + payload.size());
  std::vector<uint8_t> ip = {0x45, 0, uint8_t(total >> 8), uint8_t(total), 0, 0, 0, 0, 64, 17,
                             0,    0};
  ip.insert(ip.end(), source.begin(), source.end());
  ip.insert(ip.end(), destination.begin(), destination.end());
  f.insert(f.end(), ip.begin(), ip.end());
  uint16_t udp_length = static_cast<uint16_t>(8 + payload.size());
  std::vector<uint8_t> udp = {0x30, 0x39, 0x27, 0x0f, uint8_t(udp_length >> 8), uint8_t(udp_length),
                              0,    0};
  f.insert(f.end(), udp.begin(), udp.end());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// An Ethernet frame carrying an IPv6/UDP header (8-byte payload of zeros).
inline std::vector<uint8_t> ipv6_udp_frame(const librr::IpAddress& source,
                                           const librr::IpAddress& destination) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd};
  std::vector<uint8_t> ip = {0x60, 0, 0, 0, 0, 8, 17, 64};
  ip.insert(ip.end(), source.bytes.begin(), source.bytes.end());
  ip.insert(ip.end(), destination.bytes.begin(), destination.bytes.end());
  f.insert(f.end(), ip.begin(), ip.end());
  f.resize(f.size() + 8);
  return f;
}

}  // namespace librr_test
