// The virtio-mmio v2 transport: identification registers, feature
// negotiation, status state machine and reset, queue registers, interrupts
// and snapshots, exercised through MMIO accesses like a guest driver.
#include "devices/virtio_net.h"
#include "librr/error.h"
#include "test_virtio_driver.h"

namespace vmm::virtio {
namespace {

using testing::kDescWrite;
using testing::TestDriver;
using testing::TestGuest;

struct Transport : ::testing::Test {
  TestGuest guest;
  VirtioNet net{guest.wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 1}, net::make_null_backend()};
  TestDriver driver{net, guest};
};

TEST_F(Transport, IdentificationRegisters) {
  EXPECT_EQ(driver.read32(reg::kMagicValue), 0x74726976u);
  EXPECT_EQ(driver.read32(reg::kVersion), 2u);
  EXPECT_EQ(driver.read32(reg::kDeviceId), 1u);
  EXPECT_EQ(driver.read32(reg::kVendorId), kVendorId);
  driver.write32(reg::kQueueSel, 0);
  EXPECT_EQ(driver.read32(reg::kQueueNumMax), VirtioNet::kQueueSize);
  driver.write32(reg::kQueueSel, 2);
  EXPECT_EQ(driver.read32(reg::kQueueNumMax), 0u) << "nonexistent queue";
  EXPECT_EQ(driver.read32(reg::kConfigGeneration), 0u);
}

TEST_F(Transport, NonWordRegisterAccessIsIgnored) {
  uint8_t two[2] = {0xff, 0xff};
  net.mmio_read(reg::kMagicValue, two);
  EXPECT_EQ(two[0], 0);
  uint8_t one = status::kAcknowledge;
  net.mmio_write(reg::kStatus, std::span(&one, 1));
  EXPECT_EQ(net.device_status(), 0u);
}

TEST_F(Transport, FeatureNegotiationRequiresVersion1AndASubset) {
  uint64_t offered = driver.device_features();
  EXPECT_TRUE(offered & kFeatureVersion1);
  EXPECT_FALSE(driver.negotiate(offered & ~kFeatureVersion1)) << "legacy driver rejected";
  EXPECT_FALSE(driver.negotiate(offered | (1ull << 40))) << "feature not offered";
  EXPECT_EQ(guest.log_lines.size(), 2u);
  ASSERT_TRUE(driver.negotiate(kFeatureVersion1));
  EXPECT_EQ(net.driver_features(), kFeatureVersion1);
  // Frozen after FEATURES_OK.
  driver.write32(reg::kDriverFeaturesSel, 0);
  driver.write32(reg::kDriverFeatures, 1u << 5);
  EXPECT_EQ(net.driver_features(), kFeatureVersion1);
}

TEST_F(Transport, RefusedWritesAreLoggedAtMostAFewTimes) {
  driver.write32(reg::kStatus, status::kAcknowledge | status::kDriver);
  for (int i = 0; i < 1000; ++i) driver.write32(reg::kStatus, status::kAcknowledge);
  EXPECT_EQ(net.device_status(), status::kAcknowledge | status::kDriver);
  EXPECT_EQ(guest.log_lines.size(), VirtioMmioDevice::kMaxWarnings);
  EXPECT_NE(guest.log_lines.back().find("suppressed"), std::string::npos);
}

TEST_F(Transport, DriverOkNeedsFeaturesOk) {
  driver.write32(reg::kStatus, status::kAcknowledge | status::kDriver);
  driver.write32(reg::kStatus, status::kAcknowledge | status::kDriver | status::kDriverOk);
  EXPECT_EQ(driver.read32(reg::kStatus) & status::kDriverOk, 0u);
}

TEST_F(Transport, ResetClearsEverything) {
  driver.bring_up(32);
  net.deliver_frame(std::vector<uint8_t>(60, 7));
  driver.desc(0, 0, 0x80000, 2048, kDescWrite);
  driver.make_available(0, 0);
  driver.notify(0);
  ASSERT_NE(net.interrupt_status(), 0u);
  ASSERT_TRUE(guest.irq.level(TestGuest::kIrqLine));

  driver.write32(reg::kStatus, 0);
  EXPECT_EQ(net.device_status(), 0u);
  EXPECT_EQ(net.driver_features(), 0u);
  EXPECT_EQ(net.interrupt_status(), 0u);
  EXPECT_FALSE(guest.irq.level(TestGuest::kIrqLine));
  for (unsigned q = 0; q < 2; ++q) {
    EXPECT_FALSE(net.queue(q).ready);
    EXPECT_EQ(net.queue(q).last_avail_idx(), 0);
    EXPECT_EQ(net.queue(q).used_idx(), 0);
    EXPECT_EQ(net.queue(q).desc_addr, 0u);
  }
}

TEST_F(Transport, QueueRegistersFrozenWhileLive) {
  driver.bring_up(32);
  driver.write32(reg::kQueueSel, 0);
  driver.write32(reg::kQueueNum, 64);
  driver.write32(reg::kQueueDescLow, 0x40000);
  EXPECT_EQ(net.queue(0).size, 32);
  EXPECT_EQ(net.queue(0).desc_addr, 0x10000u);
  EXPECT_EQ(driver.read32(reg::kQueueReady), 1u);
}

TEST_F(Transport, InterruptAckLowersLineOnlyWhenAllBitsCleared) {
  driver.bring_up();
  driver.desc(0, 0, 0x80000, 2048, kDescWrite);
  driver.make_available(0, 0);
  driver.notify(0);
  net.deliver_frame(std::vector<uint8_t>(60, 7));
  EXPECT_EQ(driver.read32(reg::kInterruptStatus), kInterruptUsedBuffer);
  driver.write32(reg::kInterruptAck, kInterruptConfigChange);
  EXPECT_TRUE(guest.irq.level(TestGuest::kIrqLine));
  driver.write32(reg::kInterruptAck, kInterruptUsedBuffer);
  EXPECT_FALSE(guest.irq.level(TestGuest::kIrqLine));
}

TEST_F(Transport, NoInterruptFlagSuppressesUsedBufferInterrupt) {
  driver.bring_up();
  guest.put_obj<uint16_t>(driver.rings(0).avail, 1);  // VIRTQ_AVAIL_F_NO_INTERRUPT
  driver.desc(0, 0, 0x80000, 2048, kDescWrite);
  driver.make_available(0, 0);
  driver.notify(0);
  net.deliver_frame(std::vector<uint8_t>(60, 7));
  EXPECT_EQ(driver.used_idx(0), 1);
  EXPECT_EQ(net.interrupt_status(), 0u);
  EXPECT_FALSE(guest.irq.level(TestGuest::kIrqLine));
}

TEST_F(Transport, NotifyOfUnknownOrDisabledQueueIsHarmless) {
  driver.bring_up();
  driver.notify(7);
  driver.write32(reg::kQueueSel, 1);
  driver.write32(reg::kQueueReady, 0);
  driver.make_available(1, 0);
  driver.notify(1);
  EXPECT_FALSE(net.needs_reset());
  EXPECT_EQ(driver.used_idx(1), 0);
}

// Found by fuzzing: registers hold whatever the driver wrote until the
// device accepts it, and a snapshot must still round-trip.
TEST_F(Transport, SaveLoadRoundTripsUnacceptedRegisterValues) {
  driver.write32(reg::kDriverFeaturesSel, 1);
  driver.write32(reg::kDriverFeatures, 0xffffffff);  // not (yet) accepted
  driver.write32(reg::kQueueSel, 1);
  driver.write32(reg::kQueueNum, 512);  // larger than QueueNumMax, queue not ready
  librr::ByteWriter saved;
  net.save(saved);
  TestGuest other;
  VirtioNet restored(other.wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 1}, nullptr);
  librr::ByteReader in(saved.data());
  ASSERT_NO_THROW(restored.load(in));
  librr::ByteWriter again;
  restored.save(again);
  EXPECT_EQ(again.data(), saved.data());
}

TEST_F(Transport, SaveLoadRoundTripAndRejectsCorruptState) {
  driver.bring_up(64);
  librr::ByteWriter saved;
  net.save(saved);

  TestGuest other;
  VirtioNet restored(other.wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 1}, nullptr);
  librr::ByteReader in(saved.data());
  restored.load(in);
  in.expect_end();
  librr::ByteWriter again;
  restored.save(again);
  EXPECT_EQ(again.data(), saved.data());
  EXPECT_EQ(restored.queue(1).size, 64);
  EXPECT_EQ(restored.driver_features(), net.driver_features());

  // Truncations and corrupted fields are rejected with FormatError.
  for (size_t cut = 0; cut < saved.size(); cut += 7) {
    std::vector<uint8_t> part(saved.data().begin(), saved.data().begin() + cut);
    librr::ByteReader r(part);
    EXPECT_THROW(restored.load(r), librr::FormatError) << "cut at " << cut;
  }
  std::vector<uint8_t> bad = saved.data();
  bad[0] ^= 1;  // magic
  librr::ByteReader r1(bad);
  EXPECT_THROW(restored.load(r1), librr::FormatError);
  // Different MAC: a snapshot of another device.
  VirtioNet other_mac(other.wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 2}, nullptr);
  librr::ByteReader r2(saved.data());
  EXPECT_THROW(other_mac.load(r2), librr::FormatError);
}

}  // namespace
}  // namespace vmm::virtio
