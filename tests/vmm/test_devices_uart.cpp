#include <gtest/gtest.h>

#include "devices/uart16550.h"
#include "test_devices_support.h"

using vmm::BufferSerialInput;
using vmm::BufferSerialOutput;
using vmm::Uart16550;
using vmm::testing::in8;
using vmm::testing::out8;
using vmm::testing::RecordingIrqs;

namespace {
constexpr uint16_t kBase = 0x3f8;

TEST(Uart16550, TransmitGoesToTheSinkAndThrEmptyInterrupts) {
  RecordingIrqs irqs;
  BufferSerialOutput output;
  Uart16550 uart(irqs, output, nullptr);
  for (char c : std::string("hi\n")) out8(uart, kBase, static_cast<uint8_t>(c));
  EXPECT_EQ(output.contents(), "hi\n");
  EXPECT_EQ(in8(uart, kBase + 5) & 0x60, 0x60);  // THRE + TEMT
  EXPECT_EQ(in8(uart, kBase + 2) & 0x0f, 0x01);  // no interrupt enabled
  out8(uart, kBase + 1, 0x02);                   // enable THRE interrupt
  EXPECT_TRUE(irqs.levels[4]);
  EXPECT_EQ(in8(uart, kBase + 2) & 0x0f, 0x02);  // reading IIR acknowledges THRE
  EXPECT_FALSE(irqs.levels[4]);
  EXPECT_EQ(in8(uart, kBase + 2) & 0x0f, 0x01);
}

TEST(Uart16550, ReceiveFifoTriggerLevelAndOverrun) {
  RecordingIrqs irqs;
  BufferSerialOutput output;
  BufferSerialInput input(std::string(20, 'x'));
  Uart16550 uart(irqs, output, &input);
  out8(uart, kBase + 2, 0x81);  // FIFO on, trigger level 8
  out8(uart, kBase + 1, 0x01);  // RX data interrupt
  EXPECT_EQ(uart.pull_input(), 16u);
  EXPECT_EQ(uart.rx_fifo_level(), 16u);
  EXPECT_TRUE(irqs.levels[4]);
  EXPECT_EQ(in8(uart, kBase + 2), 0xc4);  // FIFO enabled, RX data available
  for (int i = 0; i < 10; ++i) EXPECT_EQ(in8(uart, kBase), 'x');
  EXPECT_EQ(in8(uart, kBase + 2), 0xcc);  // below trigger: character timeout
  for (int i = 0; i < 6; ++i) in8(uart, kBase);
  EXPECT_EQ(in8(uart, kBase + 5) & 0x01, 0);
  EXPECT_FALSE(irqs.levels[4]);
  EXPECT_EQ(uart.pull_input(), 4u);  // the rest of the input
  const uint8_t extra[20] = {};
  uart.receive(extra);  // more than fits: overrun
  EXPECT_EQ(in8(uart, kBase + 5) & 0x03, 0x03);
  EXPECT_EQ(in8(uart, kBase + 5) & 0x02, 0x00);  // OE clears on read
}

TEST(Uart16550, LoopbackAndDivisorLatch) {
  RecordingIrqs irqs;
  BufferSerialOutput output;
  Uart16550 uart(irqs, output, nullptr);
  out8(uart, kBase + 3, 0x80);
  out8(uart, kBase + 0, 0x01);
  out8(uart, kBase + 1, 0x00);
  EXPECT_EQ(in8(uart, kBase + 0), 0x01);
  out8(uart, kBase + 3, 0x03);
  out8(uart, kBase + 4, 0x1a);  // loopback, RTS, OUT2
  EXPECT_EQ(in8(uart, kBase + 6) & 0xf0, 0x90);
  out8(uart, kBase, 'L');
  EXPECT_EQ(output.contents(), "");
  EXPECT_EQ(in8(uart, kBase), 'L');
}

TEST(Uart16550, SaveLoadKeepsFifoContents) {
  RecordingIrqs irqs;
  BufferSerialOutput output;
  Uart16550 uart(irqs, output, nullptr);
  out8(uart, kBase + 2, 0x01);
  const uint8_t bytes[] = {'a', 'b', 'c'};
  uart.receive(bytes);
  in8(uart, kBase);
  librr::ByteWriter out;
  uart.save(out);
  Uart16550 copy(irqs, output, nullptr);
  librr::ByteReader in(out.data());
  copy.load(in);
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(in8(copy, kBase), 'b');
  EXPECT_EQ(in8(copy, kBase), 'c');
  EXPECT_EQ(in8(copy, kBase + 5) & 0x01, 0);
}

}  // namespace
