#include <gtest/gtest.h>

#include "devices/cmos_rtc.h"
#include "devices/pit8254.h"
#include "test_devices_support.h"

using vmm::CmosRtc;
using vmm::Pit8254;
using vmm::testing::in8;
using vmm::testing::ManualClock;
using vmm::testing::out8;
using vmm::testing::RecordingIrqs;

namespace {
constexpr uint64_t kMs = 1'000'000;

uint16_t latch_and_read(Pit8254& pit, unsigned channel) {
  out8(pit, 0x43, static_cast<uint8_t>(channel << 6));  // counter latch
  const uint8_t low = in8(pit, static_cast<uint16_t>(0x40 + channel));
  const uint8_t high = in8(pit, static_cast<uint16_t>(0x40 + channel));
  return static_cast<uint16_t>(low | high << 8);
}

TEST(Pit8254, Mode2CountsDownAndInterruptsOncePerPeriod) {
  ManualClock clock;
  RecordingIrqs irqs;
  Pit8254 pit(clock, irqs);
  // 100 Hz: divisor 11932, lobyte/hibyte, mode 2.
  out8(pit, 0x43, 0x34);
  out8(pit, 0x40, 11932 & 0xff);
  out8(pit, 0x40, 11932 >> 8);
  EXPECT_EQ(latch_and_read(pit, 0), 11932);
  clock.now = 5 * kMs;  // half a period: ~5966 ticks elapsed
  const uint16_t half = latch_and_read(pit, 0);
  EXPECT_NEAR(half, 11932 - 5966, 2);
  // The first interrupt is due after one period (11932 / 1193182 s = 10.0002 ms).
  EXPECT_NEAR(static_cast<double>(pit.next_deadline_ns()), 10.0002e6, 1000);
  const unsigned before = irqs.rising_edges[0];
  pit.advance_to(clock.now);  // not yet due
  EXPECT_EQ(irqs.rising_edges[0], before);
  clock.now = pit.next_deadline_ns();
  pit.advance_to(clock.now);
  EXPECT_EQ(irqs.rising_edges[0], before + 1);
  EXPECT_NEAR(static_cast<double>(pit.next_deadline_ns()), 20.0004e6, 1000);
  // Missed periods coalesce into one interrupt, then the schedule continues.
  clock.now = 55 * kMs;
  pit.advance_to(clock.now);
  EXPECT_EQ(irqs.rising_edges[0], before + 2);
  EXPECT_GT(pit.next_deadline_ns(), clock.now);
  EXPECT_LT(pit.next_deadline_ns(), clock.now + 10100000);
}

TEST(Pit8254, Mode0IsOneShotAndLatchFreezesTheValue) {
  ManualClock clock;
  RecordingIrqs irqs;
  Pit8254 pit(clock, irqs);
  out8(pit, 0x43, 0x30);  // channel 0, lobyte/hibyte, mode 0
  out8(pit, 0x40, 0xe8);
  out8(pit, 0x40, 0x03);  // 1000 ticks ~ 838 us
  out8(pit, 0x43, 0x00);  // latch now
  clock.now = 500'000;
  EXPECT_EQ(in8(pit, 0x40), 0xe8);  // still the latched value
  EXPECT_EQ(in8(pit, 0x40), 0x03);
  clock.now = 1 * kMs;
  pit.advance_to(clock.now);
  EXPECT_EQ(irqs.rising_edges[0], 1u);
  EXPECT_EQ(pit.next_deadline_ns(), vmm::TimedDevice::kNoDeadline);
}

TEST(Pit8254, ReadBackStatusAndChannel2Gate) {
  ManualClock clock;
  RecordingIrqs irqs;
  Pit8254 pit(clock, irqs);
  out8(pit, 0x43, 0xb6);  // channel 2, lobyte/hibyte, mode 3
  out8(pit, 0x42, 0x00);
  out8(pit, 0x42, 0x10);
  out8(pit, 0x43, 0xe8);  // read-back: status only, channel 2
  EXPECT_EQ(in8(pit, 0x42) & 0x3f, 0x36);
  out8(pit, 0x61, 0x01);  // gate on
  EXPECT_EQ(in8(pit, 0x61) & 0x03, 0x01);
}

TEST(Pit8254, SaveLoadRoundTrip) {
  ManualClock clock;
  RecordingIrqs irqs;
  Pit8254 pit(clock, irqs);
  out8(pit, 0x43, 0x34);
  out8(pit, 0x40, 0x00);
  out8(pit, 0x40, 0x20);
  clock.now = 3 * kMs;
  librr::ByteWriter out;
  pit.save(out);
  Pit8254 copy(clock, irqs);
  librr::ByteReader in(out.data());
  copy.load(in);
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(copy.current_count(0), pit.current_count(0));
  EXPECT_EQ(copy.next_deadline_ns(), pit.next_deadline_ns());
}

uint8_t rtc_read(CmosRtc& rtc, uint8_t index) {
  out8(rtc, 0x70, index);
  return in8(rtc, 0x71);
}
void rtc_write(CmosRtc& rtc, uint8_t index, uint8_t value) {
  out8(rtc, 0x70, index);
  out8(rtc, 0x71, value);
}

TEST(CmosRtc, TimeInBcdAndBinaryFollowsTheClock) {
  ManualClock clock;
  RecordingIrqs irqs;
  // 2026-11-20 18:31:59 UTC.
  CmosRtc rtc(clock, irqs, 1795199519);
  EXPECT_EQ(rtc_read(rtc, 0x00), 0x59);
  EXPECT_EQ(rtc_read(rtc, 0x02), 0x31);
  EXPECT_EQ(rtc_read(rtc, 0x04), 0x18);
  EXPECT_EQ(rtc_read(rtc, 0x07), 0x20);
  EXPECT_EQ(rtc_read(rtc, 0x08), 0x11);
  EXPECT_EQ(rtc_read(rtc, 0x09), 0x26);
  EXPECT_EQ(rtc_read(rtc, 0x32), 0x20);
  clock.now = 1'000'000'000;  // one second later: minute rolls over
  EXPECT_EQ(rtc_read(rtc, 0x00), 0x00);
  EXPECT_EQ(rtc_read(rtc, 0x02), 0x32);
  rtc_write(rtc, 0x0b, 0x06);  // binary, 24 h
  EXPECT_EQ(rtc_read(rtc, 0x02), 32);
  EXPECT_EQ(rtc_read(rtc, 0x0d) & 0x80, 0x80);
}

TEST(CmosRtc, GuestSetTimeSticks) {
  ManualClock clock;
  RecordingIrqs irqs;
  CmosRtc rtc(clock, irqs, 1795199519);
  rtc_write(rtc, 0x0b, 0x82);  // SET, BCD, 24 h
  rtc_write(rtc, 0x04, 0x07);  // 07 h
  rtc_write(rtc, 0x0b, 0x02);
  EXPECT_EQ(rtc_read(rtc, 0x04), 0x07);
  EXPECT_EQ(rtc_read(rtc, 0x02), 0x31);
}

TEST(CmosRtc, PeriodicInterruptUntilRegisterCIsRead) {
  ManualClock clock;
  RecordingIrqs irqs;
  CmosRtc rtc(clock, irqs, 0);
  EXPECT_EQ(rtc.next_deadline_ns(), vmm::TimedDevice::kNoDeadline);
  rtc_write(rtc, 0x0a, 0x26);  // 1024 Hz
  rtc_write(rtc, 0x0b, 0x42);  // periodic enable
  const uint64_t first = rtc.next_deadline_ns();
  EXPECT_EQ(first, 976562u);
  clock.now = first;
  rtc.advance_to(clock.now);
  EXPECT_TRUE(irqs.levels[8]);
  EXPECT_EQ(rtc_read(rtc, 0x0c), 0xc0);  // IRQF | PF, and reading acknowledges
  EXPECT_FALSE(irqs.levels[8]);
  EXPECT_EQ(rtc_read(rtc, 0x0c), 0x00);
  EXPECT_EQ(rtc.next_deadline_ns(), 2 * first);
}

}  // namespace
