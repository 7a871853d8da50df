// PacketRing on a real interface while traffic flows on another one of the
// same namespace: the ring must hold only what the kernel counted for its own
// socket. Regression test: the socket used to be created with ETH_P_ALL, which
// captures every interface from socket() on, until bind() names one; frames
// from the other interface that arrived during the (slow, 64 MiB) ring setup
// were walked but never counted, with the other copy's packet type.
#include "packet_ring.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <thread>

#include "netns_topology.h"

using namespace gateway_test;

namespace {

// Runs `body` with the calling thread inside namespace `role`.
template <class Body>
auto inside(const Topology& net, const std::string& role, Body body) {
  gateway::UniqueFd self(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  gateway::UniqueFd target(::open(("/run/netns/" + net.ns(role)).c_str(), O_RDONLY | O_CLOEXEC));
  if (::setns(target.get(), CLONE_NEWNET) != 0) throw std::runtime_error("setns");
  struct Back {
    int fd;
    ~Back() { ::setns(fd, CLONE_NEWNET); }
  } back{self.get()};
  return body();
}

}  // namespace

TEST(PacketRing, HoldsOnlyItsOwnInterfacesFramesFromTheStart) {
  if (auto reason = netns_unavailable_reason(); !reason.empty()) GTEST_SKIP() << reason;
  Topology net;
  // Traffic that crosses only wan0 of the gateway namespace (to the router's own address).
  auto sender = net.socket_in("out", AF_INET, SOCK_DGRAM, 0);
  std::atomic<bool> flooding = true;
  std::thread flood([&] {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    inet_pton(AF_INET, "10.99.1.1", &to.sin_addr);
    char payload[64] = "flood";
    while (flooding)
      ::sendto(sender.get(), payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&to),
               sizeof to);
  });
  uint64_t seen = 0, counted = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    inside(net, "gw", [&] {
      gateway::PacketRing ring("lan0", {1 << 20, 64, 20, 65535});
      std::this_thread::sleep_for(std::chrono::milliseconds(60));  // let blocks retire
      seen += ring.drain([](const gateway::CapturedFrame&) {});
      counted += ring.refresh_counters().received;
      return 0;
    });
  }
  flooding = false;
  flood.join();
  EXPECT_EQ(seen, counted) << "frames in the lan0 ring that the kernel did not count for it";
  EXPECT_EQ(seen, 0u) << "lan0 carried no traffic: every frame came from wan0";
}
