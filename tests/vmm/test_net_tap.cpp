// virtio-net over a real TAP interface: a frame the guest transmits shows up
// on the host interface (seen by an AF_PACKET socket), and a frame sent on
// the interface reaches the guest. Skips loudly where TAP is unavailable.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "devices/virtio_net.h"
#include "net/tap_backend.h"
#include "test_virtio_driver.h"

namespace vmm::virtio {
namespace {

using testing::kDescWrite;
using testing::TestDriver;
using testing::TestGuest;

constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE local experimental
constexpr uint64_t kBuf = 0x80000;

std::vector<uint8_t> test_frame(uint8_t tag) {
  std::vector<uint8_t> f(64, tag);
  std::memset(f.data(), 0xff, 6);  // broadcast
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, tag};
  std::memcpy(f.data() + 6, src, 6);
  f[12] = kTestEtherType >> 8;
  f[13] = kTestEtherType & 0xff;
  return f;
}

bool is_test_frame(std::span<const uint8_t> f, uint8_t tag) {
  return f.size() >= 64 && f[12] == (kTestEtherType >> 8) && f[13] == (kTestEtherType & 0xff) &&
         f[11] == tag;
}

TEST(NetTap, FramesCrossARealTapInterface) {
  std::unique_ptr<net::TapBackend> tap;
  try {
    tap = std::make_unique<net::TapBackend>("rrvt%d");
  } catch (const std::exception& e) {
    GTEST_SKIP() << "TAP unavailable here, test NOT run: " << e.what();
  }
  std::string ifname = tap->interface_name();
  UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM, 0));
  ifreq req{};
  std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(ctl.get(), SIOCGIFFLAGS, &req) < 0) GTEST_SKIP() << "SIOCGIFFLAGS failed";
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
  if (::ioctl(ctl.get(), SIOCSIFFLAGS, &req) < 0)
    GTEST_SKIP() << "cannot bring " << ifname << " up: " << std::strerror(errno);
  UniqueFd packet(::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
  if (!packet) GTEST_SKIP() << "no AF_PACKET socket: " << std::strerror(errno);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
  ASSERT_EQ(::bind(packet.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);

  TestGuest guest;
  VirtioNet net(guest.wiring(), VirtioNet::Mac{0x02, 0, 0, 0, 0, 1}, std::move(tap));
  TestDriver driver(net, guest);
  driver.bring_up();

  // Guest -> host.
  std::vector<uint8_t> out = test_frame(1);
  std::vector<uint8_t> packet_bytes(VirtioNet::kHeaderBytes, 0);
  packet_bytes.insert(packet_bytes.end(), out.begin(), out.end());
  guest.put(kBuf, packet_bytes.data(), packet_bytes.size());
  driver.desc(VirtioNet::kTxQueue, 0, kBuf, static_cast<uint32_t>(packet_bytes.size()), 0);
  driver.make_available(VirtioNet::kTxQueue, 0);
  driver.notify(VirtioNet::kTxQueue);
  bool seen = false;
  std::vector<uint8_t> buf(4096);
  for (int tries = 0; tries < 50 && !seen; ++tries) {
    pollfd p{packet.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::recv(packet.get(), buf.data(), buf.size(), 0);
    if (n > 0) seen = is_test_frame(std::span(buf.data(), static_cast<size_t>(n)), 1);
  }
  EXPECT_TRUE(seen) << "transmitted frame not seen on " << ifname;

  // Host -> guest: post buffers, send on the interface, pump the backend
  // (other traffic such as IPv6 neighbour discovery may come first).
  for (uint16_t i = 0; i < 8; ++i) {
    driver.desc(VirtioNet::kRxQueue, i, kBuf + 0x1000 + 0x800ull * i, 0x800, kDescWrite);
    driver.make_available(VirtioNet::kRxQueue, i);
  }
  driver.notify(VirtioNet::kRxQueue);
  std::vector<uint8_t> in = test_frame(2);
  ASSERT_EQ(::send(packet.get(), in.data(), in.size(), 0), static_cast<ssize_t>(in.size()));
  bool received = false;
  for (int tries = 0; tries < 50 && !received; ++tries) {
    pollfd p{net.backend()->poll_fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    net.pump_backend([&](std::span<const uint8_t> f) { received |= is_test_frame(f, 2); });
  }
  ASSERT_TRUE(received) << "frame sent on " << ifname << " never reached the backend";
  bool in_guest = false;
  for (auto used = driver.next_used(VirtioNet::kRxQueue); used.id != 0xffffffff;
       used = driver.next_used(VirtioNet::kRxQueue)) {
    auto got = guest.get(kBuf + 0x1000 + 0x800ull * used.id + VirtioNet::kHeaderBytes,
                         used.len - VirtioNet::kHeaderBytes);
    in_guest |= got == in;
  }
  EXPECT_TRUE(in_guest);
}

}  // namespace
}  // namespace vmm::virtio
