// End-to-end: rr-gateway in a gateway namespace between an "outside" and a
// LAN, real traffic over veth pairs, real segments and index on disk.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

#include <fstream>
#include <map>
#include <set>

#include "frame_index.h"
#include "gateway_daemon.h"
#include "librr/coop_announcement.h"
#include "librr/coop_registry.h"
#include "librr/crypto.h"
#include "netns_topology.h"
#include "pcapng_reader.h"
#include "segment_file.h"
#include "test_support.h"

using namespace gateway_test;
using gateway::UniqueFd;

namespace {

class GatewayNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reason = netns_unavailable_reason();
    if (!reason.empty()) GTEST_SKIP() << "SKIPPING gateway netns test: " << reason;
    out_dir_ = dir_.path() / "log";
  }

  std::filesystem::path write_config(const std::string& extra = "",
                                     const std::string& lan_prefix = "10.77.0.0/24") {
    auto path = dir_.path() / "gateway.conf";
    std::ofstream(path) << "lan_if = lan0, lan1\nwan_if = wan0\nlan_prefix = " << lan_prefix
                        << "\nout = " << out_dir_.string() << "\nflush_ms = 50\n"
                        << extra;
    return path;
  }

  TempDir dir_;
  std::filesystem::path out_dir_;
};

// A UDP listener in one namespace and a sender in another.
struct UdpPath {
  UniqueFd sender, receiver;
  sockaddr_in destination{};
  std::string tag;
  UdpPath(const Topology& t, const std::string& from, const std::string& to, const char* to_address,
          uint16_t port, std::string tag_)
      : tag(std::move(tag_)) {
    sender = t.socket_in(from, AF_INET, SOCK_DGRAM, 0);
    receiver = t.socket_in(to, AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int big = 8 << 20;
    setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    destination.sin_family = AF_INET;
    destination.sin_port = htons(port);
    inet_pton(AF_INET, to_address, &destination.sin_addr);
    sockaddr_in any = destination;
    any.sin_addr.s_addr = INADDR_ANY;
    if (bind(receiver.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) != 0)
      throw std::runtime_error("bind failed");
  }
  // Sends `count` datagrams "rrgw:<tag>:<i>:" padded to `size`; pauses every `burst` frames.
  void send(int count, size_t size = 100, int burst = 50, int first = 0) {
    for (int i = first; i < first + count; ++i) {
      std::string payload = "rrgw:" + tag + ":" + std::to_string(i) + ":";
      payload.resize(std::max(size, payload.size()), '.');
      if (sendto(sender.get(), payload.data(), payload.size(), 0,
                 reinterpret_cast<sockaddr*>(&destination), sizeof destination) < 0)
        throw std::runtime_error("sendto failed: " + std::string(strerror(errno)));
      if ((i + 1) % burst == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  // Waits (bounded) until `count` datagrams arrived; returns how many did.
  int receive(int count) {
    int got = 0;
    std::vector<char> buffer(65536);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got < count && std::chrono::steady_clock::now() < deadline) {
      if (recv(receiver.get(), buffer.data(), buffer.size(), 0) > 0)
        ++got;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return got;
  }
};

struct LoggedFrames {
  std::map<std::string, int> by_payload_id;  // "tag:i" -> times logged
  size_t packets = 0;
  size_t other = 0;  // frames without one of our payloads
  uint64_t isb_dropped = 0;
  std::vector<Packet> all;
};

LoggedFrames read_log(const std::filesystem::path& dir) {
  LoggedFrames result;
  for (uint64_t n = 1; n < 1000; ++n) {
    auto path = dir / gateway::segment_file_name(n);
    if (!std::filesystem::exists(path)) {
      if (std::filesystem::exists(dir / gateway::segment_partial_file_name(n))) continue;
      if (n > 5) break;
      continue;
    }
    auto file = parse_pcapng(zstd_decompress_file(path));
    for (const auto& s : file.statistics) result.isb_dropped += s.dropped;
    for (auto& p : file.packets) {
      ++result.packets;
      std::string text(p.data.begin(), p.data.end());
      auto at = text.find("rrgw:");
      if (at == std::string::npos) {
        ++result.other;
      } else {
        auto end = text.find(':', text.find(':', at + 5) + 1);
        ++result.by_payload_id[text.substr(at + 5, end - at - 5)];
      }
      result.all.push_back(std::move(p));
    }
  }
  return result;
}

int count_tag(const LoggedFrames& log, const std::string& tag, int* duplicates = nullptr) {
  int n = 0;
  for (const auto& [id, times] : log.by_payload_id)
    if (id.rfind(tag + ":", 0) == 0) {
      ++n;
      if (duplicates && times != 1) ++*duplicates;
    }
  return n;
}

}  // namespace

TEST_F(GatewayNetnsTest, LogsEveryFrameFromOutsideExactlyOnceAndNothingElse) {
  Topology net;
  GatewayProcess gateway(net, write_config(), dir_.path() / "stderr.txt");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
  UdpPath to_lan1(net, "out", "lan1", Topology::kLan1Address, 9001, "in1");
  UdpPath to_lan2(net, "out", "lan2", Topology::kLan2Address, 9002, "in2");
  UdpPath leaving(net, "lan1", "out", Topology::kOutAddress, 9003, "outbound");
  UdpPath internal(net, "lan1", "lan2", Topology::kLan2Address, 9004, "internal");
  to_lan1.send(600);
  leaving.send(300);
  internal.send(300);
  to_lan2.send(400, 1200);
  EXPECT_EQ(to_lan1.receive(600), 600);
  EXPECT_EQ(to_lan2.receive(400), 400);
  EXPECT_EQ(leaving.receive(300), 300);
  EXPECT_EQ(internal.receive(300), 300);
  gateway.signal(SIGTERM);
  ASSERT_EQ(gateway.wait_exit(), 0) << gateway.log();

  auto log = read_log(out_dir_);
  int duplicates = 0;
  EXPECT_EQ(count_tag(log, "in1", &duplicates), 600);
  EXPECT_EQ(count_tag(log, "in2", &duplicates), 400);
  EXPECT_EQ(duplicates, 0) << "some frame from outside was logged twice";
  EXPECT_EQ(count_tag(log, "outbound"), 0);
  EXPECT_EQ(count_tag(log, "internal"), 0);
  EXPECT_EQ(log.other, 0u) << "frames that are not the test's were logged";
  EXPECT_EQ(log.packets, 1000u);
  EXPECT_EQ(log.isb_dropped, 0u);

  // The index has one row per logged frame, with the digest of the logged bytes.
  gateway::FrameIndex index(out_dir_ / gateway::kIndexFileName);
  auto rows = index.all_frames();
  ASSERT_EQ(rows.size(), log.all.size());
  std::set<std::string> interfaces;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].digest, librr::hash256(log.all[i].data));
    EXPECT_EQ(rows[i].direction, "incoming");
    EXPECT_EQ(index.count_digest(rows[i].digest), 1u);
    EXPECT_EQ(log.all[i].flags & 3u, 2u) << "logged as transmitted into the LAN (outbound)";
    interfaces.insert(rows[i].interface);
  }
  EXPECT_EQ(interfaces, (std::set<std::string>{"lan0", "lan1"}));
  auto summary = gateway.summary();
  EXPECT_EQ(summary["kernel_drops"], 0u) << gateway.log();
  // Every frame walked is one the kernel counted for that socket (no foreign
  // interface's frames before bind(), no counts thrown away).
  EXPECT_EQ(summary["frames_seen"], summary["kernel_received"]) << gateway.log();
  EXPECT_EQ(summary["ring_incomplete"] + summary["ring_errors"], 0u) << gateway.log();
  EXPECT_EQ(summary["logged"], 1000u);
  EXPECT_EQ(summary["upstream_copies"], 1000u) << "each incoming frame also seen on wan0";
  EXPECT_EQ(summary["unwritten"], 0u);

  // tshark reads the decompressed segment.
  auto pcap = dir_.path() / "all.pcapng";
  int status = 0;
  run_command(
      "zstd -q -dc " + (out_dir_ / gateway::segment_file_name(1)).string() + " > " + pcap.string(),
      &status);
  ASSERT_EQ(status, 0);
  auto count = run_command(
      "tshark -r " + pcap.string() + " -Y 'ip.src == 10.99.1.2' 2>/dev/null | wc -l", &status);
  EXPECT_EQ(std::stoi(count), 1000);
}

TEST_F(GatewayNetnsTest, SighupRotatesAndRereadsConfigAndRestartContinuesNumbering) {
  Topology net;
  auto config = write_config();
  UdpPath to_lan(net, "out", "lan1", Topology::kLan1Address, 9001, "a");
  {
    GatewayProcess gateway(net, config, dir_.path() / "stderr1.txt");
    ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
    to_lan.tag = "a";
    to_lan.send(50);
    ASSERT_EQ(to_lan.receive(50), 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // Re-read: the outside becomes part of the LAN, so its frames are internal now.
    write_config("", "10.77.0.0/24, 10.99.1.0/24");
    gateway.signal(SIGHUP);
    ASSERT_TRUE(gateway.wait_for_log("now writing segment 2")) << gateway.log();
    to_lan.tag = "b";
    to_lan.send(30);
    ASSERT_EQ(to_lan.receive(30), 30);
    write_config();
    gateway.signal(SIGHUP);
    ASSERT_TRUE(gateway.wait_for_log("now writing segment 3")) << gateway.log();
    to_lan.tag = "c";
    to_lan.send(20);
    ASSERT_EQ(to_lan.receive(20), 20);
    gateway.signal(SIGTERM);
    ASSERT_EQ(gateway.wait_exit(), 0) << gateway.log();
  }
  for (int n = 1; n <= 3; ++n)
    EXPECT_TRUE(std::filesystem::exists(out_dir_ / gateway::segment_file_name(n))) << n;
  EXPECT_EQ(
      parse_pcapng(zstd_decompress_file(out_dir_ / gateway::segment_file_name(2))).packets.size(),
      0u);
  {
    GatewayProcess gateway(net, config, dir_.path() / "stderr2.txt");
    ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
    EXPECT_NE(gateway.log().find("segment 4"), std::string::npos) << gateway.log();
    to_lan.tag = "d";
    to_lan.send(10);
    ASSERT_EQ(to_lan.receive(10), 10);
    gateway.signal(SIGINT);
    ASSERT_EQ(gateway.wait_exit(), 0) << gateway.log();
  }
  EXPECT_TRUE(std::filesystem::exists(out_dir_ / gateway::segment_file_name(4)));
  auto log = read_log(out_dir_);
  int duplicates = 0;
  EXPECT_EQ(count_tag(log, "a", &duplicates), 50);
  EXPECT_EQ(count_tag(log, "b", &duplicates), 0) << "config re-read: 10.99.1.0/24 was LAN then";
  EXPECT_EQ(count_tag(log, "c", &duplicates), 20);
  EXPECT_EQ(count_tag(log, "d", &duplicates), 10);
  EXPECT_EQ(duplicates, 0);
  gateway::FrameIndex index(out_dir_ / gateway::kIndexFileName);
  EXPECT_EQ(index.all_frames().size(), 80u);
  EXPECT_EQ(index.all_frames().back().segment, 4u);
}

TEST_F(GatewayNetnsTest, DiskFullStopsLoudlyAndCountsUnwrittenFrames) {
  SmallTmpfs disk(192 * 1024);
  if (!disk.mounted()) GTEST_SKIP() << "SKIPPING: cannot mount a small tmpfs";
  out_dir_ = disk.path();
  Topology net;
  GatewayProcess gateway(net, write_config("compression_level = 1\n"), dir_.path() / "stderr.txt");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
  auto sender = net.socket_in("out", AF_INET, SOCK_DGRAM, 0);
  sockaddr_in destination{};
  destination.sin_family = AF_INET;
  destination.sin_port = htons(9009);
  inet_pton(AF_INET, Topology::kLan1Address, &destination.sin_addr);
  // Incompressible payloads fill 192 KiB quickly; stop as soon as the gateway exits.
  int exit_code = -1;
  for (int round = 0; round < 100 && exit_code < 0; ++round) {
    for (int i = 0; i < 20; ++i) {
      auto payload = random_bytes(1400, static_cast<uint32_t>(round * 100 + i));
      sendto(sender.get(), payload.data(), payload.size(), 0,
             reinterpret_cast<sockaddr*>(&destination), sizeof destination);
    }
    exit_code = gateway.wait_exit(std::chrono::milliseconds(30));
  }
  ASSERT_EQ(exit_code, gateway::kExitWriteError) << gateway.log();
  auto text = gateway.log();
  EXPECT_NE(text.find("LOGGING STOPPED"), std::string::npos) << text;
  EXPECT_TRUE(text.find("No space left on device") != std::string::npos ||
              text.find("disk is full") != std::string::npos)
      << text;
  EXPECT_GT(gateway.summary()["unwritten"], 0u) << text;
  EXPECT_TRUE(std::filesystem::exists(disk.path() / gateway::kStoppedMarker));
  // What made it to disk is consistent: every indexed frame is in the (partial) segment.
  gateway::FrameIndex index(disk.path() / gateway::kIndexFileName);
  auto rows = index.all_frames();
  auto partial = disk.path() / gateway::segment_partial_file_name(1);
  ASSERT_TRUE(std::filesystem::exists(partial));
  auto file = parse_pcapng(zstd_decompress_file(partial));
  EXPECT_GE(file.packets.size(), rows.size());
  // "logged" counts frames accepted by the log; those not durable are in "unwritten".
  EXPECT_GE(gateway.summary()["logged"], rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    EXPECT_EQ(rows[i].digest, librr::hash256(file.packets[i].data));
}

TEST_F(GatewayNetnsTest, MalformedTruncatedOversizedFramesAndBursts) {
  Topology net(9000);
  GatewayProcess gateway(net, write_config("snaplen = 2000\n"), dir_.path() / "stderr.txt");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
  // Raw junk from outside, addressed to the gateway's WAN MAC: runts in disguise,
  // IPv4 with a bad header length, IPv4 cut inside its header, unknown EtherType,
  // and a maximum-size frame.
  auto raw = net.socket_in("out", AF_PACKET, SOCK_RAW, 0);
  sockaddr_ll link{};
  link.sll_family = AF_PACKET;
  gateway::UniqueFd probe = net.socket_in("out", AF_INET, SOCK_DGRAM, 0);
  ifreq request{};
  std::strcpy(request.ifr_name, "o0");
  ASSERT_EQ(ioctl(probe.get(), SIOCGIFINDEX, &request), 0);
  link.sll_ifindex = request.ifr_ifindex;
  link.sll_halen = 6;
  std::vector<uint8_t> header = {0x02, 0, 0, 0x99, 1, 1, 0x02, 0, 0, 0x99, 1, 2};
  auto inject = [&](uint16_t ethertype, std::vector<uint8_t> body) {
    auto frame = header;
    frame.push_back(uint8_t(ethertype >> 8));
    frame.push_back(uint8_t(ethertype));
    frame.insert(frame.end(), body.begin(), body.end());
    return sendto(raw.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&link),
                  sizeof link) == static_cast<ssize_t>(frame.size());
  };
  std::vector<uint8_t> bad_ihl(40, 0);
  bad_ihl[0] = 0x43;
  EXPECT_TRUE(inject(0x0800, bad_ihl));
  EXPECT_TRUE(inject(0x0800, {0x45, 0, 0}));
  EXPECT_TRUE(inject(0x86dd, {0x60, 0}));
  EXPECT_TRUE(inject(0x1234, random_bytes(50, 1)));
  EXPECT_TRUE(inject(0x8100, {0x00}));  // VLAN tag cut short
  EXPECT_TRUE(inject(0x0800, random_bytes(8900, 2)));

  // Jumbo datagrams from outside: logged truncated to the snaplen, with their wire length.
  UdpPath jumbo(net, "out", "lan1", Topology::kLan1Address, 9005, "jumbo");
  jumbo.send(20, 8000, 5);
  EXPECT_EQ(jumbo.receive(20), 20);
  // A burst without pauses.
  UdpPath burst(net, "out", "lan2", Topology::kLan2Address, 9006, "burst");
  burst.send(3000, 64, 100000);
  EXPECT_EQ(burst.receive(3000), 3000);
  gateway.signal(SIGTERM);
  ASSERT_EQ(gateway.wait_exit(), 0) << gateway.log();

  auto log = read_log(out_dir_);
  int duplicates = 0;
  EXPECT_EQ(count_tag(log, "jumbo", &duplicates), 20);
  EXPECT_EQ(count_tag(log, "burst", &duplicates), 3000);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(log.other, 0u) << "junk sent to the gateway must not be logged";
  for (const auto& p : log.all) {
    if (p.wire_length > 2000) {
      EXPECT_EQ(p.data.size(), 2000u);
      EXPECT_EQ(p.wire_length, 8000u + 8 + 20 + 14);
    }
  }
  auto summary = gateway.summary();
  EXPECT_GE(summary["malformed"], 4u) << gateway.log();
  EXPECT_GE(summary["capture_truncated"], 40u) << "jumbo frames seen on wan0 and lan0";
  EXPECT_EQ(summary["kernel_drops"], 0u) << gateway.log();
}

TEST_F(GatewayNetnsTest, VerifiesHostAnnouncementsAndPublishesLoggedDigests) {
  Topology net;
  const std::string host_key(64, '1'), gateway_key(64, '3');
  auto registry_path = dir_.path() / "registry.json";
  std::ofstream(registry_path) << R"({"gateway": {"name": "gw", "key": ")" << gateway_key
                               << R"("}, "hosts": [{"name": "lan1", "macs": [")"
                               << Topology::kLan1Mac << R"("], "ips": ["10.77.0.2"], "key": ")"
                               << host_key << R"("}]})";
  auto registry = librr::CoopRegistry::load_file(registry_path);
  GatewayProcess gateway(net,
                         write_config("registry = " + registry_path.string() +
                                      "\nannounce_port = 9500\nannounce_publish = " +
                                      Topology::kLan1Address + ":9501\n"),
                         dir_.path() / "stderr.txt");
  ASSERT_TRUE(gateway.wait_ready()) << gateway.log();
  // The gateway's publications arrive at lan1:9501.
  auto subscriber = net.socket_in("lan1", AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  sockaddr_in bind_to{};
  bind_to.sin_family = AF_INET;
  bind_to.sin_port = htons(9501);
  ASSERT_EQ(bind(subscriber.get(), reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to), 0);

  // lan1 announces one frame, then replays the same datagram and sends a forged one.
  auto announcer = net.socket_in("lan1", AF_INET, SOCK_DGRAM, 0);
  sockaddr_in gw{};
  gw.sin_family = AF_INET;
  gw.sin_port = htons(9500);
  inet_pton(AF_INET, "10.77.0.1", &gw.sin_addr);
  librr::AnnouncementSender sender(librr::AnnouncementKind::kHostFrames, "lan1",
                                   librr::Key::from_bytes(librr::from_hex(host_key)), 1);
  std::vector<librr::AnnouncedFrame> announced = {{1, librr::hash256(std::vector<uint8_t>{1})}};
  auto datagram = sender.encode(announced).at(0);
  auto forged = datagram;
  forged[forged.size() - 1] ^= 1;
  for (const auto* d : {&datagram, &datagram, &forged})
    sendto(announcer.get(), d->data(), d->size(), 0, reinterpret_cast<sockaddr*>(&gw), sizeof gw);

  UdpPath to_lan(net, "out", "lan1", Topology::kLan1Address, 9001, "pub");
  to_lan.send(100);
  ASSERT_EQ(to_lan.receive(100), 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  gateway.signal(SIGTERM);
  ASSERT_EQ(gateway.wait_exit(), 0) << gateway.log();
  auto summary = gateway.summary();
  EXPECT_EQ(summary["announcements_accepted"], 1u) << gateway.log();
  EXPECT_EQ(summary["announcements_rejected"], 2u) << "a replay and a forged tag";

  // Every published digest verifies under the gateway key and matches the index.
  librr::AnnouncementVerifier verifier(registry);
  std::set<librr::Digest> published;
  std::vector<uint8_t> buffer(2048);
  for (;;) {
    ssize_t n = recv(subscriber.get(), buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    librr::Announcement message;
    ASSERT_EQ(verifier.verify({buffer.data(), static_cast<size_t>(n)}, &message),
              librr::AnnouncementVerdict::kAccepted);
    EXPECT_EQ(message.kind, librr::AnnouncementKind::kGatewayFrames);
    for (const auto& frame : message.frames) published.insert(frame.digest);
  }
  gateway::FrameIndex index(out_dir_ / gateway::kIndexFileName);
  std::set<librr::Digest> logged;
  for (const auto& row : index.all_frames()) logged.insert(row.digest);
  EXPECT_EQ(logged.size(), 100u);
  EXPECT_EQ(published, logged);
}
