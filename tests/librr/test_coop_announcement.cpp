// Announcement protocol: encoding, authentication, replay protection, the
// registry and the FrameReferenceResolver.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ethernet_test_frames.h"
#include "librr/coop_announcement.h"
#include "librr/coop_reference.h"
#include "librr/coop_registry.h"
#include "librr/error.h"

using namespace librr;
using librr_test::ipv4_udp_frame;

namespace {

const char* kHostKey = "1111111111111111111111111111111111111111111111111111111111111111";
const char* kOtherKey = "2222222222222222222222222222222222222222222222222222222222222222";
const char* kGatewayKey = "3333333333333333333333333333333333333333333333333333333333333333";

CoopRegistry test_registry() {
  return CoopRegistry::parse(fmt::format(R"({{
    "gateway": {{"name": "gw", "key": "{}"}},
    "hosts": [
      {{"name": "vm1", "macs": ["02:00:00:00:00:01"], "ips": ["10.1.0.1"], "key": "{}"}},
      {{"name": "vm2", "macs": ["02:00:00:00:00:07"], "ips": ["10.1.0.7", "fd00:1::7"],
        "key": "{}"}}
    ]}})",
                                         kGatewayKey, kHostKey, kOtherKey),
                             ".");
}

librr::Key key(const char* hex) { return librr::Key::from_bytes(librr::from_hex(hex)); }

AnnouncedFrame entry(uint64_t sequence, const std::vector<uint8_t>& frame) {
  return {sequence, librr::hash256(frame)};
}

}  // namespace

TEST(Announcement, RoundTripsAndSplitsIntoDatagrams) {
  AnnouncementSender sender(AnnouncementKind::kHostFrames, "vm1", key(kHostKey), 1000);
  std::vector<AnnouncedFrame> frames;
  for (uint64_t i = 0; i < 80; ++i)
    frames.push_back({i, librr::hash256(std::vector<uint8_t>{uint8_t(i)})});
  auto datagrams = sender.encode(frames);
  ASSERT_EQ(datagrams.size(), 3u) << "35 frames fit one 1472-byte datagram";
  std::vector<AnnouncedFrame> decoded_frames;
  uint64_t counter = 1000;
  for (const auto& d : datagrams) {
    EXPECT_LE(d.size(), kMaxAnnouncementSize);
    auto decoded = decode_announcement(d);
    EXPECT_EQ(decoded.message.sender, "vm1");
    EXPECT_EQ(decoded.message.kind, AnnouncementKind::kHostFrames);
    EXPECT_EQ(decoded.message.counter, counter++);
    EXPECT_EQ(decoded.tag, librr::mac256(key(kHostKey), decoded.authenticated));
    decoded_frames.insert(decoded_frames.end(), decoded.message.frames.begin(),
                          decoded.message.frames.end());
  }
  EXPECT_EQ(decoded_frames, frames);
}

TEST(Announcement, DecoderRejectsMalformedInput) {
  auto good =
      encode_announcement({AnnouncementKind::kHostFrames, "vm1", 5, {{1, {}}}}, key(kHostKey));
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_THROW(decode_announcement(std::span(good).first(n)), librr::FormatError) << n;
  auto bad_magic = good;
  bad_magic[0] ^= 1;
  EXPECT_THROW(decode_announcement(bad_magic), librr::FormatError);
  auto bad_count = good;
  bad_count[4 + 1 + 1 + 1 + 3 + 8] = 2;  // frame count claims 2 entries
  EXPECT_THROW(decode_announcement(bad_count), librr::FormatError);
  std::vector<uint8_t> huge(kMaxAnnouncementSize + 1, 0);
  EXPECT_THROW(decode_announcement(huge), librr::FormatError);
  EXPECT_THROW(encode_announcement({AnnouncementKind::kHostFrames, "", 1, {}}, key(kHostKey)),
               librr::Error);
}

TEST(Announcement, VerifierChecksSenderTagKindAndReplay) {
  auto registry = test_registry();
  AnnouncementVerifier verifier(registry);
  Announcement message{AnnouncementKind::kHostFrames, "vm1", 10, {{1, {}}}};
  auto datagram = encode_announcement(message, key(kHostKey));
  Announcement accepted;
  EXPECT_EQ(verifier.verify(datagram, &accepted), AnnouncementVerdict::kAccepted);
  EXPECT_EQ(accepted.counter, 10u);
  EXPECT_EQ(verifier.verify(datagram, nullptr), AnnouncementVerdict::kReplayed)
      << "same datagram twice";

  auto tampered =
      encode_announcement({AnnouncementKind::kHostFrames, "vm1", 11, {{2, {}}}}, key(kHostKey));
  tampered[20] ^= 0x40;  // flip a bit of the sequence number
  EXPECT_EQ(verifier.verify(tampered, nullptr), AnnouncementVerdict::kBadTag);
  // vm2 cannot speak for vm1: wrong key.
  EXPECT_EQ(verifier.verify(
                encode_announcement({AnnouncementKind::kHostFrames, "vm1", 12, {}}, key(kOtherKey)),
                nullptr),
            AnnouncementVerdict::kBadTag);
  EXPECT_EQ(verifier.verify(
                encode_announcement({AnnouncementKind::kHostFrames, "vm9", 12, {}}, key(kHostKey)),
                nullptr),
            AnnouncementVerdict::kUnknownSender);
  EXPECT_EQ(verifier.verify(encode_announcement({AnnouncementKind::kGatewayFrames, "vm1", 13, {}},
                                                key(kHostKey)),
                            nullptr),
            AnnouncementVerdict::kWrongKind)
      << "a host cannot publish gateway digests";
  EXPECT_EQ(verifier.verify(encode_announcement({AnnouncementKind::kGatewayFrames, "gw", 1, {}},
                                                key(kGatewayKey)),
                            nullptr),
            AnnouncementVerdict::kAccepted);
  std::vector<uint8_t> garbage = {1, 2, 3};
  EXPECT_EQ(verifier.verify(garbage, nullptr), AnnouncementVerdict::kMalformed);
  // Reordered but fresh counters are accepted once; stale ones are not.
  auto later = encode_announcement({AnnouncementKind::kHostFrames, "vm1", 30, {}}, key(kHostKey));
  auto earlier = encode_announcement({AnnouncementKind::kHostFrames, "vm1", 20, {}}, key(kHostKey));
  EXPECT_EQ(verifier.verify(later, nullptr), AnnouncementVerdict::kAccepted);
  EXPECT_EQ(verifier.verify(earlier, nullptr), AnnouncementVerdict::kAccepted);
  EXPECT_EQ(verifier.verify(earlier, nullptr), AnnouncementVerdict::kReplayed);
}

TEST(AnnouncementReplayWindow, AcceptsEachCounterOnceWithinTheWindow) {
  AnnouncementReplayWindow window;
  EXPECT_TRUE(window.accept(100));
  EXPECT_FALSE(window.accept(100));
  EXPECT_TRUE(window.accept(102));
  EXPECT_TRUE(window.accept(101));
  EXPECT_FALSE(window.accept(101));
  EXPECT_TRUE(window.accept(200));
  EXPECT_FALSE(window.accept(136)) << "older than 64 behind the highest";
  EXPECT_TRUE(window.accept(137));
  EXPECT_FALSE(window.fresh(137));
  EXPECT_TRUE(window.accept(1000));
  EXPECT_FALSE(window.accept(200));
}

TEST(CoopRegistry, RejectsBadEntries) {
  EXPECT_THROW(CoopRegistry::parse("{}", "."), librr::FormatError);
  EXPECT_THROW(CoopRegistry::parse(R"({"gateway": {"name": "gw"}})", "."), librr::FormatError);
  EXPECT_THROW(CoopRegistry::parse(R"({"gateway": {"name": "gw", "key": "00"}})", "."),
               librr::FormatError);
  auto dup = fmt::format(R"({{"gateway": {{"name": "gw", "key": "{0}"}},
    "hosts": [{{"name": "a", "key": "{0}"}}, {{"name": "a", "key": "{0}"}}]}})",
                         kHostKey);
  EXPECT_THROW(CoopRegistry::parse(dup, "."), librr::FormatError);
  auto bad_mac = fmt::format(R"({{"gateway": {{"name": "gw", "key": "{0}"}},
    "hosts": [{{"name": "a", "key": "{0}", "macs": ["zz"]}}]}})",
                             kHostKey);
  EXPECT_THROW(CoopRegistry::parse(bad_mac, "."), librr::FormatError);
  auto registry = test_registry();
  EXPECT_EQ(registry.owner_of(IpAddress::parse("fd00:1::7"))->name, "vm2");
  EXPECT_EQ(registry.owner_of(MacAddress::parse("02:00:00:00:00:01"))->name, "vm1");
  EXPECT_EQ(registry.owner_of(IpAddress::parse("10.1.0.99")), nullptr);
}

TEST(FrameReferenceResolver, ResolvesAnnouncedGatewayAndUnknownFrames) {
  auto registry = test_registry();
  FrameReferenceResolver resolver(registry);
  // A frame vm1 sent (its MAC 02:..:01 is the source in ipv4_udp_frame).
  auto from_vm1 = ipv4_udp_frame({10, 1, 0, 1}, {10, 1, 0, 7}, {1, 2, 3});
  auto from_outside = ipv4_udp_frame({192, 0, 2, 1}, {10, 1, 0, 7}, {4, 5, 6});
  from_outside[6] = 0x0a;  // gateway's MAC, not a cooperating host's
  auto unknown = ipv4_udp_frame({192, 0, 2, 9}, {10, 1, 0, 7}, {7});
  unknown[6] = 0x0a;

  // Before any announcement: a frame claiming vm1's address is flagged.
  auto r = resolver.resolve(from_vm1);
  EXPECT_EQ(r.kind, FrameReferenceKind::kLogInFull);
  EXPECT_TRUE(r.unauthenticated_cooperating_source);
  EXPECT_EQ(r.claimed_host, "vm1");

  resolver.add({AnnouncementKind::kHostFrames, "vm1", 1, {entry(42, from_vm1)}});
  resolver.add({AnnouncementKind::kGatewayFrames, "gw", 1, {entry(7ull << 32 | 3, from_outside)}});
  r = resolver.resolve(from_vm1);
  EXPECT_EQ(r.kind, FrameReferenceKind::kSenderSequence);
  EXPECT_EQ(r.sender, "vm1");
  EXPECT_EQ(r.sequence, 42u);
  EXPECT_FALSE(r.unauthenticated_cooperating_source);
  EXPECT_EQ(r.digest, librr::hash256(from_vm1));

  r = resolver.resolve(from_outside);
  EXPECT_EQ(r.kind, FrameReferenceKind::kGatewayDigest);
  EXPECT_EQ(r.sequence, 7ull << 32 | 3);
  r = resolver.resolve(unknown);
  EXPECT_EQ(r.kind, FrameReferenceKind::kLogInFull);
  EXPECT_FALSE(r.unauthenticated_cooperating_source);

  // vm2 announces a frame that carries vm1's source address: not trusted.
  auto forged = ipv4_udp_frame({10, 1, 0, 1}, {10, 1, 0, 7}, {6, 6, 6});
  resolver.add({AnnouncementKind::kHostFrames, "vm2", 1, {entry(1, forged)}});
  r = resolver.resolve(forged);
  EXPECT_EQ(r.kind, FrameReferenceKind::kLogInFull);
  EXPECT_TRUE(r.unauthenticated_cooperating_source);
  EXPECT_EQ(r.claimed_host, "vm1");
  // A 5-byte runt cannot claim anything and is logged in full.
  std::vector<uint8_t> runt = {1, 2, 3, 4, 5};
  EXPECT_EQ(resolver.resolve(runt).kind, FrameReferenceKind::kLogInFull);
}

TEST(FrameReferenceResolver, ForgetsOldestDigestsBeyondCapacity) {
  auto registry = test_registry();
  FrameReferenceResolver resolver(registry, 2);
  std::vector<std::vector<uint8_t>> frames;
  for (uint8_t i = 0; i < 3; ++i) {
    frames.push_back(ipv4_udp_frame({10, 1, 0, 1}, {10, 1, 0, 7}, {i}));
    resolver.add({AnnouncementKind::kHostFrames, "vm1", i, {entry(i, frames.back())}});
  }
  EXPECT_EQ(resolver.resolve(frames[0]).kind, FrameReferenceKind::kLogInFull);
  EXPECT_EQ(resolver.resolve(frames[1]).kind, FrameReferenceKind::kSenderSequence);
  EXPECT_EQ(resolver.resolve(frames[2]).sequence, 2u);
}
