// Prefixes and the direction classifier (the Ethernet parser is tested in
// tests/librr/test_ethernet_frame.cpp).
#include "classifier.h"

#include <gtest/gtest.h>

#include "librr/error.h"
#include "librr/ethernet_frame.h"
#include "librr/net_address.h"
#include "test_support.h"

using namespace gateway;
using namespace librr;
using gateway_test::ipv4_udp_frame;
using gateway_test::ipv6_udp_frame;

namespace {

Classifier lan_classifier(bool lan_captured = true) {
  return Classifier({Prefix::parse("10.1.0.0/16"), Prefix::parse("fd00:1::/64")}, lan_captured);
}

}  // namespace

TEST(Prefix, MatchesIpv4AndIpv6) {
  auto p = Prefix::parse("10.1.2.3/16");
  EXPECT_EQ(p.to_string(), "10.1.0.0/16");
  EXPECT_TRUE(p.contains(IpAddress::parse("10.1.255.7")));
  EXPECT_FALSE(p.contains(IpAddress::parse("10.2.0.1")));
  // An IPv4-mapped IPv6 address is an IPv6 address on the wire: it is not in an IPv4 prefix.
  EXPECT_FALSE(p.contains(IpAddress::parse("::ffff:10.1.0.1")));
  auto p6 = Prefix::parse("fd00:1::/60");
  EXPECT_TRUE(p6.contains(IpAddress::parse("fd00:1:0:f::1")));
  EXPECT_FALSE(p6.contains(IpAddress::parse("fd00:1:0:10::1")));
  EXPECT_FALSE(p6.contains(IpAddress::parse("10.1.0.1")));
  EXPECT_TRUE(Prefix::parse("0.0.0.0/0").contains(IpAddress::parse("8.8.8.8")));
  EXPECT_FALSE(Prefix::parse("0.0.0.0/0").contains(IpAddress::parse("::1")));
  EXPECT_TRUE(Prefix::parse("192.0.2.1").contains(IpAddress::parse("192.0.2.1")));
  EXPECT_FALSE(Prefix::parse("192.0.2.1").contains(IpAddress::parse("192.0.2.2")));
  EXPECT_THROW(Prefix::parse("10.0.0.0/33"), librr::FormatError);
  EXPECT_THROW(Prefix::parse("10.0.0/8"), librr::FormatError);
  EXPECT_THROW(Prefix::parse("fd00::/129"), librr::FormatError);
  EXPECT_THROW(Prefix::parse("10.0.0.0/x"), librr::FormatError);
}

TEST(Classifier, DirectionFromAddresses) {
  auto c = lan_classifier();
  auto classify = [&](std::array<uint8_t, 4> s, std::array<uint8_t, 4> d, InterfaceRole role,
                      LinkDirection link) {
    auto f = ipv4_udp_frame(s, d, {});
    return c.classify(parse_ethernet_frame(f, static_cast<uint32_t>(f.size())), role, link);
  };
  auto in_lan_out =
      classify({192, 0, 2, 1}, {10, 1, 0, 2}, InterfaceRole::kLan, LinkDirection::kSent);
  EXPECT_EQ(in_lan_out.direction, Direction::kIncoming);
  EXPECT_TRUE(in_lan_out.log) << "the copy transmitted into the LAN is the one logged";
  auto wan_copy =
      classify({192, 0, 2, 1}, {10, 1, 0, 2}, InterfaceRole::kWan, LinkDirection::kReceived);
  EXPECT_EQ(wan_copy.direction, Direction::kIncoming);
  EXPECT_FALSE(wan_copy.log) << "the upstream copy is not logged when the LAN side is captured";
  auto spoofed =
      classify({192, 0, 2, 1}, {10, 1, 0, 2}, InterfaceRole::kLan, LinkDirection::kReceived);
  EXPECT_FALSE(spoofed.log);
  EXPECT_EQ(classify({10, 1, 0, 2}, {192, 0, 2, 1}, InterfaceRole::kLan, LinkDirection::kReceived)
                .direction,
            Direction::kOutgoing);
  auto internal = classify({10, 1, 0, 2}, {10, 1, 3, 3}, InterfaceRole::kLan, LinkDirection::kSent);
  EXPECT_EQ(internal.direction, Direction::kInternal);
  EXPECT_FALSE(internal.log);
  EXPECT_EQ(classify({192, 0, 2, 1}, {198, 51, 100, 1}, InterfaceRole::kWan, LinkDirection::kSent)
                .direction,
            Direction::kExternal);
  // Broadcast reaches the LAN only when sent on the LAN side.
  EXPECT_TRUE(
      classify({192, 0, 2, 1}, {255, 255, 255, 255}, InterfaceRole::kLan, LinkDirection::kSent)
          .log);
  EXPECT_EQ(classify({192, 0, 2, 1}, {224, 0, 0, 1}, InterfaceRole::kWan, LinkDirection::kReceived)
                .direction,
            Direction::kExternal);
  // IPv6.
  auto v6 = ipv6_udp_frame(IpAddress::parse("2001:db8::1"), IpAddress::parse("fd00:1::5"));
  auto r = c.classify(parse_ethernet_frame(v6, static_cast<uint32_t>(v6.size())),
                      InterfaceRole::kLan, LinkDirection::kSent);
  EXPECT_EQ(r.direction, Direction::kIncoming);
  EXPECT_TRUE(r.log);
}

TEST(Classifier, WanOnlyCaptureLogsAtWanIngress) {
  auto c = lan_classifier(/*lan_captured=*/false);
  auto f = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 2}, {});
  auto parsed = parse_ethernet_frame(f, static_cast<uint32_t>(f.size()));
  EXPECT_TRUE(c.classify(parsed, InterfaceRole::kWan, LinkDirection::kReceived).log);
  EXPECT_FALSE(c.classify(parsed, InterfaceRole::kWan, LinkDirection::kSent).log);
}

TEST(Classifier, NonIpAndBrokenFramesByInterfaceRole) {
  auto c = lan_classifier();
  std::vector<uint8_t> arp(42, 0);
  arp[12] = 0x08;
  arp[13] = 0x06;
  auto parsed = parse_ethernet_frame(arp, 42);
  auto sent_into_lan = c.classify(parsed, InterfaceRole::kLan, LinkDirection::kSent);
  EXPECT_EQ(sent_into_lan.direction, Direction::kIncoming);
  EXPECT_TRUE(sent_into_lan.log) << "the gateway's ARP replies are input to LAN hosts";
  EXPECT_EQ(c.classify(parsed, InterfaceRole::kLan, LinkDirection::kReceived).direction,
            Direction::kInternal);
  EXPECT_EQ(c.classify(parsed, InterfaceRole::kWan, LinkDirection::kReceived).direction,
            Direction::kExternal);
  std::vector<uint8_t> runt = {1, 2, 3};
  auto r = c.classify(parse_ethernet_frame(runt, 3), InterfaceRole::kLan, LinkDirection::kSent);
  EXPECT_TRUE(r.log) << "whatever the gateway transmits into the LAN is logged, even garbage";
  EXPECT_FALSE(
      c.classify(parse_ethernet_frame(runt, 3), InterfaceRole::kWan, LinkDirection::kReceived).log);
}
