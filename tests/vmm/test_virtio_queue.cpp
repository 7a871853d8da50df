// Every malformed virtqueue a hostile guest can build must put the device in
// the error state (DEVICE_NEEDS_RESET + config interrupt + one log line
// naming device, queue, descriptor and problem), never crash and never touch
// memory outside guest RAM (the ASan build checks the latter).
#include "devices/virtio_net.h"
#include "test_virtio_driver.h"

namespace vmm::virtio {
namespace {

using testing::kDescIndirect;
using testing::kDescNext;
using testing::kDescWrite;
using testing::TestDriver;
using testing::TestGuest;

constexpr unsigned kTx = VirtioNet::kTxQueue;
constexpr unsigned kRx = VirtioNet::kRxQueue;
constexpr uint64_t kBuf = 0x80000;
constexpr uint16_t kSize = 16;

struct MalformedQueue : ::testing::Test {
  void SetUp() override {
    net = std::make_unique<VirtioNet>(guest.wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 1},
                                      net::make_null_backend());
    driver = std::make_unique<TestDriver>(*net, guest);
    driver->bring_up(kSize);
  }
  // A valid 60-byte transmit buffer (header + frame) at `gpa`.
  void tx_desc(uint16_t index, uint64_t gpa, uint16_t flags = 0, uint16_t next = 0) {
    driver->desc(kTx, index, gpa, 60, flags, next);
  }
  void submit(unsigned q, uint16_t head) {
    driver->make_available(q, head);
    driver->notify(q);
  }
  // Asserts the error state and that the single log line names `where` (e.g.
  // "queue 1: descriptor 3") and contains `problem`.
  void expect_error(const std::string& where, const std::string& problem) {
    EXPECT_TRUE(net->needs_reset());
    EXPECT_TRUE(driver->read32(reg::kStatus) & status::kNeedsReset);
    EXPECT_TRUE(driver->read32(reg::kInterruptStatus) & kInterruptConfigChange);
    EXPECT_TRUE(guest.irq.level(TestGuest::kIrqLine));
    ASSERT_EQ(guest.log_lines.size(), 1u);
    const std::string& line = guest.log_lines[0];
    EXPECT_NE(line.find("virtio-net: " + where + ":"), std::string::npos) << line;
    EXPECT_NE(line.find(problem), std::string::npos) << line;
  }

  TestGuest guest;
  std::unique_ptr<VirtioNet> net;
  std::unique_ptr<TestDriver> driver;
};

TEST_F(MalformedQueue, ValidChainIsAccepted) {
  tx_desc(0, kBuf);
  submit(kTx, 0);
  EXPECT_FALSE(net->needs_reset());
  EXPECT_EQ(driver->next_used(kTx).id, 0u);
  EXPECT_TRUE(guest.log_lines.empty());
}

TEST_F(MalformedQueue, DescriptorLoop) {
  tx_desc(0, kBuf, kDescNext, 1);
  tx_desc(1, kBuf + 0x100, kDescNext, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "descriptor loop");
}

TEST_F(MalformedQueue, SelfLoop) {
  tx_desc(5, kBuf, kDescNext, 5);
  submit(kTx, 5);
  expect_error("queue 1: descriptor 5", "longer than the queue size");
}

TEST_F(MalformedQueue, HeadIndexOutOfRange) {
  submit(kTx, kSize);
  expect_error("queue 1: descriptor 16", "names head 16");
}

TEST_F(MalformedQueue, NextIndexOutOfRange) {
  tx_desc(2, kBuf, kDescNext, 300);
  submit(kTx, 2);
  expect_error("queue 1: descriptor 2", "next index 300 out of range");
}

TEST_F(MalformedQueue, BufferCrossesEndOfRam) {
  driver->desc(kTx, 0, TestGuest::kRamBytes - 10, 60, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "outside guest RAM");
}

TEST_F(MalformedQueue, BufferAddressWrapsAround) {
  driver->desc(kTx, 0, ~0ull - 4, 60, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "outside guest RAM");
}

TEST_F(MalformedQueue, AbsurdLength) {
  driver->desc(kTx, 0, kBuf, 0xffffffff, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "outside guest RAM");
}

TEST_F(MalformedQueue, OverlappingBuffers) {
  tx_desc(0, kBuf, kDescNext, 1);
  tx_desc(1, kBuf + 30, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "overlaps another buffer");
}

TEST_F(MalformedQueue, WritableBufferOverRings) {
  // A receive buffer covering the rx descriptor table itself.
  driver->desc(kRx, 0, driver->rings(kRx).desc, 2048, kDescWrite);
  submit(kRx, 0);
  net->deliver_frame(std::vector<uint8_t>(60, 1));
  expect_error("queue 0: descriptor 0", "overlaps the rings");
}

TEST_F(MalformedQueue, WritableBufferInTransmitQueue) {
  driver->desc(kTx, 0, kBuf, 60, kDescWrite);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "device-writable buffer in the transmit queue");
}

TEST_F(MalformedQueue, ReadableBufferInReceiveQueue) {
  driver->desc(kRx, 0, kBuf, 2048, 0);
  submit(kRx, 0);
  net->deliver_frame(std::vector<uint8_t>(60, 1));
  expect_error("queue 0: descriptor 0", "device-readable buffer in the receive queue");
}

TEST_F(MalformedQueue, ReadableAfterWritable) {
  driver->desc(kRx, 0, kBuf, 100, kDescWrite | kDescNext, 1);
  driver->desc(kRx, 1, kBuf + 0x1000, 100, 0);
  submit(kRx, 0);
  net->deliver_frame(std::vector<uint8_t>(60, 1));
  expect_error("queue 0: descriptor 1", "device-readable buffer after a device-writable one");
}

TEST_F(MalformedQueue, TransmitShorterThanHeader) {
  driver->desc(kTx, 0, kBuf, 4, 0);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "shorter than the 12-byte header");
}

TEST_F(MalformedQueue, AvailIndexJumpsMoreThanQueueSize) {
  driver->set_avail_idx(kTx, kSize + 1);
  driver->notify(kTx);
  expect_error("queue 1: descriptor -", "avail idx jumped from 0 to 17");
}

TEST_F(MalformedQueue, IndirectTableNextOutOfRange) {
  uint64_t table = kBuf + 0x4000;
  driver->put_desc(table, 0, kBuf, 60, kDescNext, 2);  // table has 2 entries
  driver->put_desc(table, 1, kBuf + 0x100, 60, 0);
  driver->desc(kTx, 0, table, 32, kDescIndirect);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0 (indirect)", "next index 2 out of range");
}

TEST_F(MalformedQueue, NestedIndirect) {
  uint64_t table = kBuf + 0x4000;
  driver->put_desc(table, 0, table, 16, kDescIndirect);
  driver->desc(kTx, 0, table, 16, kDescIndirect);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0 (indirect)", "nested indirect");
}

TEST_F(MalformedQueue, IndirectTableBadLength) {
  driver->desc(kTx, 0, kBuf + 0x4000, 24, kDescIndirect);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "not a non-zero multiple of 16");
}

TEST_F(MalformedQueue, IndirectLoopIsCappedAtTableSize) {
  uint64_t table = kBuf + 0x4000;
  // 64 entries in the table, each pointing at the next and the last back to
  // the first: the chain cap (table size) must stop the walk.
  for (uint16_t i = 0; i < 64; ++i)
    driver->put_desc(table, i, kBuf + 0x100ull * i, 60, kDescNext, (i + 1) % 64);
  driver->desc(kTx, 0, table, 64 * 16, kDescIndirect);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0 (indirect)", "longer than the indirect table size 64");
}

TEST_F(MalformedQueue, IndirectTableLongerThanSmallQueueIsAccepted) {
  // Linux sizes indirect tables by segment count, which can exceed a small
  // queue (here 16): 20 buffers of 3 bytes after the 12-byte header.
  uint64_t table = kBuf + 0x4000;
  driver->put_desc(table, 0, kBuf, 12, kDescNext, 1);
  for (uint16_t i = 1; i <= 20; ++i)
    driver->put_desc(table, i, kBuf + 0x100ull * i, 3, i < 20 ? kDescNext : 0,
                     static_cast<uint16_t>(i + 1));
  driver->desc(kTx, 0, table, 21 * 16, kDescIndirect);
  submit(kTx, 0);
  EXPECT_FALSE(net->needs_reset()) << (guest.log_lines.empty() ? "" : guest.log_lines[0]);
  EXPECT_EQ(driver->next_used(kTx).id, 0u);
}

TEST_F(MalformedQueue, AbsurdIndirectTable) {
  driver->desc(kTx, 0, 0x10000, 8192 * 16, kDescIndirect);
  submit(kTx, 0);
  expect_error("queue 1: descriptor 0", "indirect table of 8192 entries exceeds 4096");
}

TEST_F(MalformedQueue, ValidIndirectChainIsAccepted) {
  uint64_t table = kBuf + 0x4000;
  driver->put_desc(table, 0, kBuf, 12, kDescNext, 1);
  driver->put_desc(table, 1, kBuf + 0x100, 48, 0);
  driver->desc(kTx, 0, table, 32, kDescIndirect);
  submit(kTx, 0);
  EXPECT_FALSE(net->needs_reset());
  EXPECT_EQ(driver->next_used(kTx).id, 0u);
}

TEST(MalformedQueueSetup, BadRingLayoutFailsQueueReady) {
  struct Case {
    uint32_t num;
    uint64_t desc, avail, used;
    const char* problem;
  };
  const Case cases[] = {
      {12, 0x10000, 0x14000, 0x18000, "not a power of two"},
      {512, 0x10000, 0x14000, 0x18000, "not a power of two in [1, 256]"},
      {0, 0x10000, 0x14000, 0x18000, "queue size 0"},
      {16, 0x10008, 0x14000, 0x18000, "not 16-byte aligned"},
      {16, 0x10000, 0x14000, TestGuest::kRamBytes - 8, "used ring"},
      {16, 0x10000, 0xfffffffff000, 0x18000, "avail ring"},
      {16, 0x10000, 0x14000, 0x10000, "used ring overlaps the descriptor table"},
  };
  for (const Case& c : cases) {
    TestGuest guest;
    VirtioNet net(guest.wiring(), VirtioNet::Mac{}, nullptr);
    TestDriver driver(net, guest);
    ASSERT_TRUE(driver.negotiate(driver.device_features()));
    driver.write32(reg::kQueueSel, 0);
    driver.write32(reg::kQueueNum, c.num);
    driver.write32(reg::kQueueDescLow, static_cast<uint32_t>(c.desc));
    driver.write32(reg::kQueueDriverLow, static_cast<uint32_t>(c.avail));
    driver.write32(reg::kQueueDriverHigh, static_cast<uint32_t>(c.avail >> 32));
    driver.write32(reg::kQueueDeviceLow, static_cast<uint32_t>(c.used));
    driver.write32(reg::kQueueReady, 1);
    EXPECT_EQ(driver.read32(reg::kQueueReady), 0u) << c.problem;
    EXPECT_TRUE(net.needs_reset()) << c.problem;
    ASSERT_EQ(guest.log_lines.size(), 1u) << c.problem;
    EXPECT_NE(guest.log_lines[0].find(c.problem), std::string::npos) << guest.log_lines[0];
  }
}

TEST_F(MalformedQueue, ErrorStateIgnoresNotifiesUntilReset) {
  tx_desc(0, kBuf, kDescNext, 0);
  submit(kTx, 0);
  ASSERT_TRUE(net->needs_reset());
  tx_desc(1, kBuf);
  submit(kTx, 1);
  EXPECT_EQ(driver->used_idx(kTx), 0) << "no processing in the error state";
  EXPECT_EQ(guest.log_lines.size(), 1u) << "one log line per failure";

  // A reset and a fresh bring-up make the device usable again.
  driver->bring_up(kSize);
  EXPECT_FALSE(net->needs_reset());
  EXPECT_EQ(net->interrupt_status(), 0u);
  tx_desc(0, kBuf);
  submit(kTx, 0);
  EXPECT_EQ(driver->next_used(kTx).id, 0u);
  EXPECT_FALSE(net->needs_reset());
}

}  // namespace
}  // namespace vmm::virtio
