// virtio-net driven as a guest driver would, with a real socketpair as the
// wire: frames the guest transmits come out at the peer, frames the peer
// sends reach the guest's receive buffers.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include "devices/virtio_net.h"
#include "librr/error.h"
#include "net/socket_backend.h"
#include "test_virtio_driver.h"

namespace vmm::virtio {
namespace {

using testing::kDescNext;
using testing::kDescWrite;
using testing::TestDriver;
using testing::TestGuest;

constexpr VirtioNet::Mac kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr uint64_t kBuf = 0x80000;

std::vector<uint8_t> test_frame(size_t n, uint8_t seed) {
  std::vector<uint8_t> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<uint8_t>(seed + i * 7);
  return f;
}

struct NetFixture : ::testing::Test {
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), 0);
    peer.reset(fds[1]);
    auto backend = std::make_unique<net::SocketBackend>(UniqueFd(fds[0]), "socketpair");
    net = std::make_unique<VirtioNet>(guest.wiring(), kMac, std::move(backend));
    driver = std::make_unique<TestDriver>(*net, guest);
  }
  // Posts one receive buffer of `len` bytes at `gpa` as descriptor `index`.
  void post_rx(uint16_t index, uint64_t gpa, uint32_t len) {
    driver->desc(VirtioNet::kRxQueue, index, gpa, len, kDescWrite);
    driver->make_available(VirtioNet::kRxQueue, index);
    driver->notify(VirtioNet::kRxQueue);
  }
  std::optional<std::vector<uint8_t>> peer_recv() {
    std::vector<uint8_t> buf(70000);
    ssize_t n = ::recv(peer.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

  TestGuest guest;
  UniqueFd peer;
  std::unique_ptr<VirtioNet> net;
  std::unique_ptr<TestDriver> driver;
};

TEST_F(NetFixture, ConfigSpaceHoldsMacAndLinkUp) {
  EXPECT_EQ(driver->read32(reg::kDeviceId), VirtioNet::kDeviceId);
  uint8_t config[8];
  for (int i = 0; i < 8; ++i) net->mmio_read(reg::kConfig + i, std::span(config + i, 1));
  EXPECT_TRUE(std::equal(kMac.begin(), kMac.end(), config));
  EXPECT_EQ(config[6] | (config[7] << 8), 1) << "VIRTIO_NET_S_LINK_UP";
  uint64_t features = driver->device_features();
  EXPECT_TRUE(features & (1ull << 5)) << "VIRTIO_NET_F_MAC";
  EXPECT_TRUE(features & kFeatureVersion1);
}

TEST_F(NetFixture, TransmitsFrameSplitAcrossDescriptorsToThePeer) {
  driver->bring_up();
  std::vector<uint8_t> frame = test_frame(300, 1);
  uint8_t header[VirtioNet::kHeaderBytes] = {};
  guest.put(kBuf, header, sizeof header);
  guest.put(kBuf + 0x1000, frame.data(), 100);
  guest.put(kBuf + 0x2000, frame.data() + 100, 200);
  driver->desc(VirtioNet::kTxQueue, 0, kBuf, sizeof header, kDescNext, 1);
  driver->desc(VirtioNet::kTxQueue, 1, kBuf + 0x1000, 100, kDescNext, 2);
  driver->desc(VirtioNet::kTxQueue, 2, kBuf + 0x2000, 200, 0);
  driver->make_available(VirtioNet::kTxQueue, 0);
  driver->notify(VirtioNet::kTxQueue);

  auto received = peer_recv();
  ASSERT_TRUE(received);
  EXPECT_EQ(*received, frame);
  auto used = driver->next_used(VirtioNet::kTxQueue);
  EXPECT_EQ(used.id, 0u);
  EXPECT_EQ(net->interrupt_status() & kInterruptUsedBuffer, kInterruptUsedBuffer);
  EXPECT_TRUE(guest.irq.level(TestGuest::kIrqLine));
  driver->write32(reg::kInterruptAck, kInterruptUsedBuffer);
  EXPECT_FALSE(guest.irq.level(TestGuest::kIrqLine));
  EXPECT_EQ(net->stats().tx_frames, 1u);
}

TEST_F(NetFixture, ReceivesFrameInjectedAtThePeer) {
  driver->bring_up();
  post_rx(0, kBuf, 2048);
  std::vector<uint8_t> frame = test_frame(1514, 9);
  ASSERT_EQ(::send(peer.get(), frame.data(), frame.size(), 0), 1514);

  std::vector<std::vector<uint8_t>> observed;
  EXPECT_EQ(net->pump_backend([&](auto f) { observed.emplace_back(f.begin(), f.end()); }), 1u);
  ASSERT_EQ(observed.size(), 1u);
  EXPECT_EQ(observed[0], frame);

  auto used = driver->next_used(VirtioNet::kRxQueue);
  EXPECT_EQ(used.id, 0u);
  EXPECT_EQ(used.len, VirtioNet::kHeaderBytes + frame.size());
  EXPECT_EQ(guest.get_obj<uint16_t>(kBuf + 10), 1) << "num_buffers";
  EXPECT_EQ(guest.get(kBuf + VirtioNet::kHeaderBytes, frame.size()), frame);
  EXPECT_TRUE(guest.irq.level(TestGuest::kIrqLine));
}

TEST_F(NetFixture, FrameWaitsForReceiveBufferAndBackpressureStopsPumping) {
  driver->bring_up();
  for (size_t i = 0; i < VirtioNet::kMaxPendingFrames + 5; ++i) {
    auto f = test_frame(60, static_cast<uint8_t>(i));
    ASSERT_EQ(::send(peer.get(), f.data(), f.size(), 0), 60);
  }
  EXPECT_EQ(net->pump_backend(), VirtioNet::kMaxPendingFrames);
  EXPECT_FALSE(net->wants_frames());
  EXPECT_EQ(driver->used_idx(VirtioNet::kRxQueue), 0);

  post_rx(3, kBuf, 2048);
  auto used = driver->next_used(VirtioNet::kRxQueue);
  EXPECT_EQ(used.id, 3u);
  EXPECT_EQ(guest.get(kBuf + VirtioNet::kHeaderBytes, 60), test_frame(60, 0));
  EXPECT_TRUE(net->wants_frames());
  // The five frames left in the socket are still there for the next pump.
  EXPECT_EQ(net->pump_backend(), 1u);
}

TEST_F(NetFixture, FramesBeforeDriverOkAreDropped) {
  net->deliver_frame(test_frame(60, 1));
  driver->bring_up();
  post_rx(0, kBuf, 2048);
  EXPECT_EQ(driver->used_idx(VirtioNet::kRxQueue), 0);
  EXPECT_EQ(net->stats().rx_dropped, 1u);
}

TEST_F(NetFixture, TooSmallReceiveBufferIsReturnedEmpty) {
  driver->bring_up();
  post_rx(0, kBuf, 100);
  net->deliver_frame(test_frame(200, 1));
  auto used = driver->next_used(VirtioNet::kRxQueue);
  EXPECT_EQ(used.id, 0u);
  EXPECT_EQ(used.len, 0u);
  EXPECT_FALSE(net->needs_reset());
}

// Same guest accesses + same delivered frames => same guest memory and
// device state: the property record/replay relies on.
TEST(NetDeterminism, SameInputsGiveSameStateAndMemory) {
  auto run = [](TestGuest& guest) {
    VirtioNet net(guest.wiring(), kMac, net::make_null_backend());
    TestDriver driver(net, guest);
    driver.bring_up();
    net.deliver_frame(test_frame(80, 3));
    driver.desc(VirtioNet::kRxQueue, 0, kBuf, 2048, kDescWrite);
    driver.make_available(VirtioNet::kRxQueue, 0);
    driver.notify(VirtioNet::kRxQueue);
    net.deliver_frame(test_frame(90, 4));
    librr::ByteWriter out;
    net.save(out);
    return out.take();
  };
  TestGuest a, b;
  EXPECT_EQ(run(a), run(b));
  EXPECT_EQ(a.ram, b.ram);
}

TEST_F(NetFixture, SnapshotRestoresQueuesAndPendingFrames) {
  driver->bring_up();
  post_rx(0, kBuf, 2048);
  net->deliver_frame(test_frame(70, 1));
  net->deliver_frame(test_frame(71, 2));  // pending: no buffer left
  librr::ByteWriter saved;
  net->save(saved);

  // A fresh device over a copy of guest RAM continues where the first left.
  TestGuest copy;
  copy.ram = guest.ram;
  VirtioNet restored(copy.wiring(), kMac, net::make_null_backend());
  librr::ByteReader in(saved.data(), "net snapshot");
  restored.load(in);
  in.expect_end();
  EXPECT_EQ(restored.device_status(), net->device_status());
  EXPECT_EQ(restored.queue(VirtioNet::kRxQueue).last_avail_idx(), 1);
  EXPECT_EQ(restored.queue(VirtioNet::kRxQueue).used_idx(), 1);
  EXPECT_TRUE(copy.irq.level(TestGuest::kIrqLine)) << "load re-asserts the pending interrupt";

  TestDriver copy_driver(restored, copy);
  copy_driver.attach_rings(0, 16);
  copy_driver.desc(0, 1, kBuf + 0x1000, 2048, kDescWrite);
  copy_driver.make_available(0, 1);
  copy_driver.notify(0);
  auto used = copy_driver.next_used(0);
  EXPECT_EQ(used.id, 1u);
  EXPECT_EQ(copy.get(kBuf + 0x1000 + VirtioNet::kHeaderBytes, 71), test_frame(71, 2));

  std::vector<uint8_t> truncated(saved.data().begin(), saved.data().end() - 3);
  librr::ByteReader bad(truncated);
  VirtioNet victim(copy.wiring(), kMac, nullptr);
  EXPECT_THROW(victim.load(bad), librr::FormatError);
}

TEST(NetBackendSpec, UnixSeqpacketAndDgramAndErrors) {
  std::string dir = ::testing::TempDir();
  for (int type : {SOCK_SEQPACKET, SOCK_DGRAM}) {
    std::string path = dir + "/rr-net-" + std::to_string(::getpid()) + "-" + std::to_string(type);
    ::unlink(path.c_str());
    UniqueFd server(::socket(AF_UNIX, type, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (type == SOCK_SEQPACKET) {
      ASSERT_EQ(::listen(server.get(), 1), 0);
    }
    auto backend = net::make_net_backend("unix:" + path);
    EXPECT_GE(backend->poll_fd(), 0);
    auto frame = test_frame(64, 5);
    EXPECT_TRUE(backend->send(frame));
    UniqueFd conn = type == SOCK_SEQPACKET ? UniqueFd(::accept(server.get(), nullptr, nullptr))
                                           : UniqueFd(::dup(server.get()));
    std::vector<uint8_t> buf(200);
    ASSERT_EQ(::recv(conn.get(), buf.data(), buf.size(), 0), 64) << "socket type " << type;
    buf.resize(64);
    EXPECT_EQ(buf, frame);
    ::unlink(path.c_str());
  }
  EXPECT_THROW(net::make_net_backend("unix:/nonexistent/rr-net"), librr::SystemError);
  EXPECT_THROW(net::make_net_backend("fd:abc"), librr::Error);
  EXPECT_THROW(net::make_net_backend("bogus"), librr::Error);
}

}  // namespace
}  // namespace vmm::virtio
