// Cooperative logging, recording side, over real UDP sockets on loopback:
// which received frames become references (to a cooperating host's send or to
// the gateway's log), which are logged in full, which are flagged, how long a
// receiver waits for an announcement, and that forged or replayed
// announcements are refused. Announcements of the gateway are encoded here by
// hand from schemas/gateway-protocol.md, independently of rr-gateway's code.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "librr/bytes.h"
#include "librr/crypto.h"
#include "librr/error.h"
#include "net/cooperation.h"
#include "net/cooperative_record.h"

namespace fs = std::filesystem;
using namespace vmm::net;
using Clock = std::chrono::steady_clock;

namespace {

const std::array<uint8_t, 6> kMacA = {0x02, 0x00, 0x00, 0x77, 0x00, 0x02};
const std::array<uint8_t, 6> kMacB = {0x02, 0x00, 0x00, 0x77, 0x00, 0x03};
const std::array<uint8_t, 6> kMacGateway = {0x02, 0x00, 0x00, 0x77, 0x00, 0x01};

// A UDP port nobody uses right now (bound to 0, read back, released).
uint16_t free_udp_port() {
  int s = ::socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  ::bind(s, reinterpret_cast<sockaddr*>(&any), sizeof any);
  socklen_t length = sizeof any;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&any), &length);
  ::close(s);
  return ntohs(any.sin6_port);
}

std::vector<uint8_t> frame_from(const std::array<uint8_t, 6>& source,
                                const std::array<uint8_t, 6>& destination, uint8_t marker) {
  std::vector<uint8_t> frame(destination.begin(), destination.end());
  frame.insert(frame.end(), source.begin(), source.end());
  frame.push_back(0x88);
  frame.push_back(0xb5);
  frame.resize(60, marker);
  return frame;
}

struct Fixture {
  fs::path dir = fs::temp_directory_path() / fmt::format("rr-coop-{}", ::getpid());
  librr::Key key_a = librr::Key::generate(), key_b = librr::Key::generate(),
             key_gw = librr::Key::generate();
  fs::path registry = dir / "registry.json";
  uint16_t port_a = free_udp_port(), port_b = free_udp_port();

  Fixture() {
    fs::create_directories(dir);
    std::ofstream(registry) << fmt::format(
        R"({{"gateway": {{"name": "gw", "key": "{}"}},
            "hosts": [{{"name": "vmA", "macs": ["02:00:00:77:00:02"], "ips": ["10.77.0.2"], "key": "{}"}},
                      {{"name": "vmB", "macs": ["02:00:00:77:00:03"], "ips": ["10.77.0.3"], "key": "{}"}}]}})",
        librr::to_hex(key_gw.bytes()), librr::to_hex(key_a.bytes()), librr::to_hex(key_b.bytes()));
  }
  ~Fixture() { fs::remove_all(dir); }

  CooperativeRecordSettings settings(const std::string& name, uint16_t listen,
                                     std::vector<std::string> announce_to) const {
    CooperativeRecordSettings s;
    s.registry = registry;
    s.name = name;
    s.listen_port = listen;
    s.announce_to = std::move(announce_to);
    s.host_wait = std::chrono::milliseconds(150);
    s.gateway_wait = std::chrono::milliseconds(0);
    return s;
  }
};

// One message of the protocol, built from its specification.
std::vector<uint8_t> announcement(uint8_t kind, const std::string& sender, uint64_t counter,
                                  uint64_t sequence, const librr::Digest& digest,
                                  const librr::Key& key) {
  librr::ByteWriter out;
  out.u32(0x4e415252);
  out.u8(1);
  out.u8(kind);
  out.u8(static_cast<uint8_t>(sender.size()));
  out.raw(sender.data(), sender.size());
  out.u64(counter);
  out.u16(1);
  out.u64(sequence);
  out.raw(digest.data(), digest.size());
  auto tag = librr::mac256(key, out.data());
  out.raw(tag.data(), tag.size());
  return out.take();
}

void send_to(uint16_t port, const std::vector<uint8_t>& datagram) {
  int s = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  ASSERT_EQ(
      ::sendto(s, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
      static_cast<ssize_t>(datagram.size()));
  ::close(s);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TEST(FrameReferenceCodec, RoundTripsAndRefusesDamage) {
  FrameReference reference{FrameOrigin::kGateway, "gw", (7ull << 32) | 42, {}, 1514};
  reference.digest[0] = 0xab;
  auto bytes = encode_frame_reference(reference);
  EXPECT_EQ(decode_frame_reference(bytes), reference);
  auto truncated = bytes;
  truncated.pop_back();
  EXPECT_THROW(decode_frame_reference(truncated), librr::FormatError);
  auto trailing = bytes;
  trailing.push_back(0);
  EXPECT_THROW(decode_frame_reference(trailing), librr::FormatError);
  auto bad_origin = bytes;
  bad_origin[1] = 3;
  EXPECT_THROW(decode_frame_reference(bad_origin), librr::FormatError);
  EXPECT_TRUE(is_received_frame_channel("net0"));
  EXPECT_TRUE(is_received_frame_channel(kNetReferenceChannel));
  EXPECT_TRUE(is_received_frame_channel(kNetUnauthenticatedChannel));
  EXPECT_FALSE(is_received_frame_channel("serial0"));
}

TEST(CooperativeRecorder, AnnouncedFrameOfACooperatingHostIsLoggedAsReference) {
  Fixture f;
  CooperativeRecorder a(f.settings("vmA", f.port_a, {fmt::format("127.0.0.1:{}", f.port_b)}));
  CooperativeRecorder b(f.settings("vmB", f.port_b, {fmt::format("127.0.0.1:{}", f.port_a)}));
  auto first = frame_from(kMacA, kMacB, 1), second = frame_from(kMacA, kMacB, 2);
  a.on_transmit(first);
  a.on_transmit(second);
  auto logged = b.log_received(second);
  ASSERT_EQ(logged.channel, kNetReferenceChannel);
  auto reference = decode_frame_reference(logged.data);
  EXPECT_EQ(reference.origin, FrameOrigin::kHost);
  EXPECT_EQ(reference.sender, "vmA");
  EXPECT_EQ(reference.sequence, 2u) << "the second frame vmA transmitted";
  EXPECT_EQ(reference.digest, librr::hash256(second));
  EXPECT_EQ(reference.length, second.size());
  EXPECT_EQ(b.stats().host_references, 1u);
  EXPECT_EQ(b.stats().announcements_accepted, 2u);
  EXPECT_EQ(a.stats().transmitted, 2u);
}

TEST(CooperativeRecorder, FrameClaimingAHostWithoutAnnouncementWaitsThenIsFlagged) {
  Fixture f;
  CooperativeRecorder b(f.settings("vmB", f.port_b, {}));
  auto spoofed = frame_from(kMacA, kMacB, 9);
  auto started = Clock::now();
  auto logged = b.log_received(spoofed);
  double waited = seconds_since(started);
  EXPECT_EQ(logged.channel, kNetUnauthenticatedChannel);
  EXPECT_EQ(logged.data, spoofed) << "logged in full";
  EXPECT_GE(waited, 0.14) << "bounded wait for a late announcement";
  EXPECT_LT(waited, 2.0) << "the wait is bounded";
  EXPECT_EQ(b.stats().flagged, 1u);
  EXPECT_EQ(b.stats().waits_timed_out, 1u);
}

TEST(CooperativeRecorder, LateAnnouncementArrivingWithinTheWaitStillMakesAReference) {
  Fixture f;
  CooperativeRecorder b(f.settings("vmB", f.port_b, {}));
  auto frame = frame_from(kMacA, kMacB, 5);
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    send_to(f.port_b, announcement(1, "vmA", 1000, 17, librr::hash256(frame), f.key_a));
  });
  auto logged = b.log_received(frame);
  late.join();
  ASSERT_EQ(logged.channel, kNetReferenceChannel);
  EXPECT_EQ(decode_frame_reference(logged.data).sequence, 17u);
}

TEST(CooperativeRecorder, OtherFramesAreLoggedInFullWithoutWaiting) {
  Fixture f;
  CooperativeRecorder b(f.settings("vmB", f.port_b, {}));
  auto frame = frame_from({0x02, 0x42, 0, 0, 0, 9}, kMacB, 3);
  auto started = Clock::now();
  auto logged = b.log_received(frame);
  EXPECT_LT(seconds_since(started), 0.1);
  EXPECT_EQ(logged.channel, "net0");
  EXPECT_EQ(logged.data, frame);
  EXPECT_EQ(b.stats().full, 1u);
}

TEST(CooperativeRecorder, FrameTheGatewayLoggedIsAGatewayReference) {
  Fixture f;
  CooperativeRecorder b(f.settings("vmB", f.port_b, {}));
  auto frame = frame_from(kMacGateway, kMacB, 4);
  uint64_t gateway_sequence = (3ull << 32) | 11;
  send_to(f.port_b, announcement(2, "gw", 500, gateway_sequence, librr::hash256(frame), f.key_gw));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto logged = b.log_received(frame);
  ASSERT_EQ(logged.channel, kNetReferenceChannel);
  auto reference = decode_frame_reference(logged.data);
  EXPECT_EQ(reference.origin, FrameOrigin::kGateway);
  EXPECT_EQ(reference.sender, "gw");
  EXPECT_EQ(reference.sequence, gateway_sequence);
}

TEST(CooperativeRecorder, ForgedWrongKindAndReplayedAnnouncementsAreRefused) {
  Fixture f;
  CooperativeRecorder b(f.settings("vmB", f.port_b, {}));
  auto forged_frame = frame_from(kMacA, kMacB, 6);
  // vmA's name, vmB's key: the tag does not verify.
  send_to(f.port_b, announcement(1, "vmA", 1, 1, librr::hash256(forged_frame), f.key_b));
  // The gateway's kind with a host's name and key.
  send_to(f.port_b, announcement(2, "vmA", 2, 1, librr::hash256(forged_frame), f.key_a));
  // A genuine one, sent twice: the copy is a replay.
  auto genuine_frame = frame_from(kMacA, kMacB, 7);
  auto genuine = announcement(1, "vmA", 3, 5, librr::hash256(genuine_frame), f.key_a);
  send_to(f.port_b, genuine);
  send_to(f.port_b, genuine);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(b.log_received(forged_frame).channel, kNetUnauthenticatedChannel);
  EXPECT_EQ(b.log_received(genuine_frame).channel, kNetReferenceChannel);
  EXPECT_EQ(b.stats().announcements_accepted, 1u);
  EXPECT_EQ(b.stats().announcements_rejected, 3u);
}

TEST(CooperativeRecorder, RefusesAHostNotInTheRegistry) {
  Fixture f;
  EXPECT_THROW(CooperativeRecorder(f.settings("vmZ", 0, {})), librr::Error);
  EXPECT_THROW(CooperativeRecorder(f.settings("vmA", 0, {"nowhere"})), librr::Error);
}
