#include <gtest/gtest.h>

#include "devices/pic8259.h"
#include "test_devices_support.h"

using vmm::Pic8259;
using vmm::testing::in8;
using vmm::testing::out8;

namespace {

// The initialization sequence every PC OS uses: vectors 0x20 and 0x28.
void init_pics(Pic8259& pic, uint8_t master_mask = 0, uint8_t slave_mask = 0) {
  out8(pic, 0x20, 0x11);
  out8(pic, 0x21, 0x20);
  out8(pic, 0x21, 0x04);
  out8(pic, 0x21, 0x01);
  out8(pic, 0xa0, 0x11);
  out8(pic, 0xa1, 0x28);
  out8(pic, 0xa1, 0x02);
  out8(pic, 0xa1, 0x01);
  out8(pic, 0x21, master_mask);
  out8(pic, 0xa1, slave_mask);
}

void pulse(Pic8259& pic, unsigned line) {
  pic.set_irq(line, true);
  pic.set_irq(line, false);
}

TEST(Pic8259, LowerLineWinsAndEoiReleasesTheNext) {
  Pic8259 pic;
  init_pics(pic);
  pulse(pic, 4);
  pulse(pic, 0);
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x20);  // IRQ 0 beats IRQ 4
  // IRQ 4 has lower priority than the in-service IRQ 0: not delivered yet.
  EXPECT_FALSE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.isr(0), 0x01);
  out8(pic, 0x20, 0x20);  // non-specific EOI
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x24);
  out8(pic, 0x20, 0x20);
  EXPECT_FALSE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.isr(0), 0);
}

TEST(Pic8259, HigherPriorityNestsOverInService) {
  Pic8259 pic;
  init_pics(pic);
  pulse(pic, 4);
  EXPECT_EQ(pic.acknowledge(), 0x24);
  pulse(pic, 1);  // higher priority than the in-service IRQ 4
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x21);
  EXPECT_EQ(pic.isr(0), 0x12);
  out8(pic, 0x20, 0x20);  // EOI clears the highest in service: IRQ 1
  EXPECT_EQ(pic.isr(0), 0x10);
}

TEST(Pic8259, MaskedLinesWaitInIrr) {
  Pic8259 pic;
  init_pics(pic, 0x01);
  pulse(pic, 0);
  EXPECT_FALSE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.irr(0), 0x01);
  out8(pic, 0x21, 0x00);
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x20);
}

TEST(Pic8259, SlaveInterruptsCascadeThroughIrq2) {
  Pic8259 pic;
  init_pics(pic);
  pulse(pic, 8);
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x28);
  EXPECT_EQ(pic.isr(0), 0x04);
  EXPECT_EQ(pic.isr(1), 0x01);
  // A second slave request while the first is in service waits for both EOIs.
  pulse(pic, 12);
  EXPECT_FALSE(pic.has_pending_interrupt());
  out8(pic, 0xa0, 0x20);
  out8(pic, 0x20, 0x20);
  ASSERT_TRUE(pic.has_pending_interrupt());
  EXPECT_EQ(pic.acknowledge(), 0x2c);
}

TEST(Pic8259, EdgeNeedsANewRisingEdgeLevelStaysAsserted) {
  Pic8259 pic;
  init_pics(pic);
  pic.set_irq(3, true);
  EXPECT_EQ(pic.acknowledge(), 0x23);
  out8(pic, 0x20, 0x20);
  EXPECT_FALSE(pic.has_pending_interrupt()) << "edge line still high must not re-trigger";
  // Level-triggered via ELCR: the request persists while the line is high.
  out8(pic, 0x4d0, 0x08);
  pic.set_irq(3, false);
  pic.set_irq(3, true);
  EXPECT_EQ(pic.acknowledge(), 0x23);
  out8(pic, 0x20, 0x20);
  EXPECT_TRUE(pic.has_pending_interrupt());
  pic.set_irq(3, false);
  EXPECT_FALSE(pic.has_pending_interrupt());
}

TEST(Pic8259, SpecificEoiPollAndRegisterReads) {
  Pic8259 pic;
  init_pics(pic);
  pulse(pic, 5);
  pulse(pic, 6);
  EXPECT_EQ(in8(pic, 0x20), 0x60);  // IRR by default
  EXPECT_EQ(pic.acknowledge(), 0x25);
  out8(pic, 0x20, 0x0b);  // OCW3: read ISR
  EXPECT_EQ(in8(pic, 0x20), 0x20);
  out8(pic, 0x20, 0x65);  // specific EOI for IRQ 5
  EXPECT_EQ(in8(pic, 0x20), 0x00);
  out8(pic, 0x20, 0x0c);  // poll command
  EXPECT_EQ(in8(pic, 0x20), 0x86);
  EXPECT_EQ(pic.isr(0), 0x40);
}

TEST(Pic8259, AcknowledgeWithNothingPendingIsSpuriousIrq7) {
  Pic8259 pic;
  init_pics(pic);
  EXPECT_EQ(pic.acknowledge(), 0x27);
}

TEST(Pic8259, SaveLoadRoundTripKeepsPendingState) {
  Pic8259 pic;
  init_pics(pic, 0x10);
  pulse(pic, 0);
  pulse(pic, 9);
  EXPECT_EQ(pic.acknowledge(), 0x20);
  librr::ByteWriter out;
  pic.save(out);
  Pic8259 copy;
  librr::ByteReader in(out.data());
  copy.load(in);
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(copy.isr(0), pic.isr(0));
  EXPECT_EQ(copy.imr(0), 0x10);
  out8(copy, 0x20, 0x20);
  EXPECT_EQ(copy.acknowledge(), 0x29);
  librr::ByteReader truncated(std::span<const uint8_t>(out.data()).first(5));
  EXPECT_THROW(copy.load(truncated), librr::FormatError);
}

}  // namespace
