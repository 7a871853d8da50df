// Ethernet frame parsing and MAC/IP address text forms (librr/ethernet_frame.h,
// librr/net_address.h): frames are hostile input, every read must stay in the capture.
#include <gtest/gtest.h>

#include "ethernet_test_frames.h"
#include "librr/error.h"
#include "librr/ethernet_frame.h"
#include "librr/net_address.h"

using namespace librr;
using librr_test::ipv4_udp_frame;
using librr_test::ipv6_udp_frame;

TEST(MacAddress, ParsesAndFormats) {
  auto mac = MacAddress::parse("02:AB:cd:00:01:ff");
  EXPECT_EQ(mac.to_string(), "02:ab:cd:00:01:ff");
  EXPECT_THROW(MacAddress::parse("02:ab:cd:00:01"), librr::FormatError);
  EXPECT_THROW(MacAddress::parse("02-ab-cd-00-01-ff"), librr::FormatError);
  EXPECT_THROW(MacAddress::parse("02:ab:cd:00:01:fg"), librr::FormatError);
}

TEST(FrameParser, ParsesIpv4AndIpv6Addresses) {
  auto v4 = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 2}, {1, 2, 3});
  auto parsed = parse_ethernet_frame(v4, static_cast<uint32_t>(v4.size()));
  ASSERT_EQ(parsed.status, EthernetFrameStatus::kIp);
  EXPECT_EQ(parsed.source_ip->to_string(), "192.0.2.1");
  EXPECT_EQ(parsed.destination_ip->to_string(), "10.1.0.2");
  EXPECT_EQ(parsed.ip_protocol, 17);
  EXPECT_EQ(parsed.source_mac.to_string(), "02:00:00:00:00:01");
  EXPECT_FALSE(parsed.capture_truncated);

  auto v6 = ipv6_udp_frame(IpAddress::parse("2001:db8::1"), IpAddress::parse("fd00:1::5"));
  parsed = parse_ethernet_frame(v6, static_cast<uint32_t>(v6.size()));
  ASSERT_EQ(parsed.status, EthernetFrameStatus::kIp);
  EXPECT_EQ(parsed.destination_ip->to_string(), "fd00:1::5");
}

TEST(FrameParser, FollowsVlanTags) {
  auto frame = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 2}, {});
  std::vector<uint8_t> tag = {0x81, 0x00, 0x00, 0x05};
  frame.insert(frame.begin() + 12, tag.begin(), tag.end());
  auto parsed = parse_ethernet_frame(frame, static_cast<uint32_t>(frame.size()));
  EXPECT_EQ(parsed.vlan_tags, 1u);
  ASSERT_EQ(parsed.status, EthernetFrameStatus::kIp);
  EXPECT_EQ(parsed.destination_ip->to_string(), "10.1.0.2");
}

TEST(FrameParser, NeverReadsPastTheCapture) {
  auto frame = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 2}, {9, 9, 9, 9});
  // Every prefix of a valid frame is classified without reading beyond it (ASan checks
  // the copy on the heap, sized exactly).
  for (size_t n = 0; n <= frame.size(); ++n) {
    std::vector<uint8_t> cut(frame.begin(), frame.begin() + static_cast<long>(n));
    auto parsed = parse_ethernet_frame(cut, static_cast<uint32_t>(frame.size()));
    if (n < 14)
      EXPECT_EQ(parsed.status, EthernetFrameStatus::kRunt) << n;
    else if (n < 34)
      EXPECT_EQ(parsed.status, EthernetFrameStatus::kTruncatedIp) << n;
    else
      EXPECT_EQ(parsed.status, EthernetFrameStatus::kIp) << n;
    EXPECT_EQ(parsed.capture_truncated, n < frame.size());
  }
}

TEST(FrameParser, FlagsMalformedAndOversizedFrames) {
  auto frame = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 2}, {});
  frame[14] = 0x43;  // IHL 3 < 5
  EXPECT_EQ(parse_ethernet_frame(frame, 100).status, EthernetFrameStatus::kMalformedIp);
  frame[14] = 0x65;  // version 6 in an IPv4 EtherType
  EXPECT_EQ(parse_ethernet_frame(frame, 100).status, EthernetFrameStatus::kMalformedIp);
  frame[14] = 0x4f;  // IHL 15 = 60 bytes: header longer than the capture
  frame[16] = 0xff;
  EXPECT_EQ(parse_ethernet_frame(frame, 100).status, EthernetFrameStatus::kTruncatedIp);
  std::vector<uint8_t> arp(60, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(parse_ethernet_frame(arp, 60).status, EthernetFrameStatus::kNonIp);
  EXPECT_TRUE(parse_ethernet_frame(arp, 65535).oversized);
  EXPECT_TRUE(parse_ethernet_frame(arp, 65535).capture_truncated);
  std::vector<uint8_t> jumbo(kMaxExpectedEthernetFrameLength + 1, 0);
  EXPECT_TRUE(parse_ethernet_frame(jumbo, static_cast<uint32_t>(jumbo.size())).oversized);
}
