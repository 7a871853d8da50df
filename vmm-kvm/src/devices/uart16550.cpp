#include "devices/uart16550.h"

#include "librr/error.h"

namespace vmm {
namespace {
// Register offsets from the base port.
constexpr unsigned kData = 0;  // RBR / THR / DLL
constexpr unsigned kIer = 1;   // IER / DLM
constexpr unsigned kIir = 2;   // IIR (read) / FCR (write)
constexpr unsigned kLcr = 3;
constexpr unsigned kMcr = 4;
constexpr unsigned kLsr = 5;
constexpr unsigned kMsr = 6;
constexpr unsigned kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoopback = 0x10;
constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerLineStatus = 0x04;

constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirRxTimeout = 0x0c;
constexpr uint8_t kIirThrEmpty = 0x02;

constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTransmitterEmpty = 0x40;
}  // namespace

Uart16550::Uart16550(IrqSink& irqs, SerialOutput& output, SerialInput* input, uint16_t base,
                     unsigned irq)
    : irqs_(irqs), output_(output), input_(input), base_(base), irq_(irq) {}

size_t Uart16550::rx_trigger_level() const {
  static constexpr size_t kLevels[4] = {1, 4, 8, 14};
  return fifo_enabled() ? kLevels[fcr_ >> 6] : 1;
}

uint8_t Uart16550::interrupt_id() const {
  if ((ier_ & kIerLineStatus) && overrun_) return kIirLineStatus;
  if ((ier_ & kIerRxData) && rx_count_ > 0)
    // Below the trigger level, real hardware reports a character timeout
    // after four character times; with no baud clock we report it at once.
    return rx_count_ >= rx_trigger_level() ? kIirRxData : kIirRxTimeout;
  if ((ier_ & kIerThrEmpty) && thr_empty_interrupt_) return kIirThrEmpty;
  return kIirNone;
}

void Uart16550::update_irq() {
  const bool level = interrupt_id() != kIirNone;
  if (level != irq_level_) {
    irq_level_ = level;
    irqs_.set_irq(irq_, level);
  }
}

uint8_t Uart16550::modem_status() const {
  if (mcr_ & kMcrLoopback) {
    // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (Linux's probe checks this).
    return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) | ((mcr_ & 0x04) << 4) |
                                ((mcr_ & 0x08) << 4));
  }
  return 0xb0;  // DCD, DSR, CTS: a terminal is always attached
}

void Uart16550::receive(std::span<const uint8_t> bytes) {
  for (uint8_t byte : bytes) {
    if (rx_count_ >= rx_capacity()) {
      overrun_ = true;
      continue;
    }
    rx_fifo_[(rx_head_ + rx_count_) % kFifoSize] = byte;
    ++rx_count_;
  }
  update_irq();
}

size_t Uart16550::pull_input() {
  if (!input_ || (mcr_ & kMcrLoopback)) return 0;
  const size_t room = rx_capacity() - rx_count_;
  if (room == 0) return 0;
  uint8_t chunk[kFifoSize];
  const size_t n = input_->take(std::span<uint8_t>(chunk, room));
  if (n > 0) receive(std::span<const uint8_t>(chunk, n));
  return n;
}

void Uart16550::transmit(uint8_t byte) {
  if (mcr_ & kMcrLoopback)
    receive(std::span<const uint8_t>(&byte, 1));
  else
    output_.write(byte);
  thr_empty_interrupt_ = true;
}

uint8_t Uart16550::read_register(unsigned offset) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData: {
      if (dlab) return divisor_low_;
      if (rx_count_ == 0) return 0;
      const uint8_t byte = rx_fifo_[rx_head_];
      rx_head_ = (rx_head_ + 1) % kFifoSize;
      --rx_count_;
      update_irq();
      if (rx_count_ == 0 && wants_input_ && input_ && input_->has_data()) wants_input_();
      return byte;
    }
    case kIer:
      return dlab ? divisor_high_ : ier_;
    case kIir: {
      const uint8_t id = interrupt_id();
      if (id == kIirThrEmpty) {
        thr_empty_interrupt_ = false;  // reading IIR acknowledges THRE
        update_irq();
      }
      return static_cast<uint8_t>(id | (fifo_enabled() ? 0xc0 : 0));
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t lsr = kLsrThrEmpty | kLsrTransmitterEmpty;
      if (rx_count_ > 0) lsr |= kLsrDataReady;
      if (overrun_) lsr |= kLsrOverrun;
      overrun_ = false;  // error bits clear on read
      update_irq();
      return lsr;
    }
    case kMsr:
      return modem_status();
    default:
      return scr_;
  }
}

void Uart16550::write_register(unsigned offset, uint8_t value) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab)
        divisor_low_ = value;
      else
        transmit(value);
      break;
    case kIer:
      if (dlab) {
        divisor_high_ = value;
      } else {
        // Enabling THRE interrupts while THR is empty raises one immediately.
        if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thr_empty_interrupt_ = true;
        ier_ = value & 0x0f;
      }
      break;
    case kIir:  // FCR
      if ((value & 0x01) != (fcr_ & 0x01) || (value & 0x02)) {
        rx_head_ = 0;  // toggling FIFO mode or RX reset empties the FIFO
        rx_count_ = 0;
      }
      fcr_ = value & 0xc1;
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kScr:
      scr_ = value;
      break;
    default:  // LSR and MSR are read-only
      break;
  }
  update_irq();
}

void Uart16550::pio_read(uint16_t port, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = read_register(static_cast<unsigned>((port - base_ + i) & 7));
}

void Uart16550::pio_write(uint16_t port, std::span<const uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i)
    write_register(static_cast<unsigned>((port - base_ + i) & 7), data[i]);
}

void Uart16550::save(librr::ByteWriter& out) const {
  out.u8(static_cast<uint8_t>(rx_count_));
  for (size_t i = 0; i < rx_count_; ++i) out.u8(rx_fifo_[(rx_head_ + i) % kFifoSize]);
  out.u8(ier_);
  out.u8(lcr_);
  out.u8(mcr_);
  out.u8(fcr_);
  out.u8(scr_);
  out.u8(divisor_low_);
  out.u8(divisor_high_);
  out.boolean(overrun_);
  out.boolean(thr_empty_interrupt_);
  out.boolean(irq_level_);
}

void Uart16550::load(librr::ByteReader& in) {
  const size_t count = in.u8();
  if (count > kFifoSize)
    throw librr::FormatError("uart0: receive FIFO holds " + std::to_string(count) + " bytes",
                             static_cast<int64_t>(in.position()));
  rx_head_ = 0;
  rx_count_ = count;
  for (size_t i = 0; i < count; ++i) rx_fifo_[i] = in.u8();
  ier_ = in.u8() & 0x0f;
  lcr_ = in.u8();
  mcr_ = in.u8() & 0x1f;
  fcr_ = in.u8() & 0xc1;
  scr_ = in.u8();
  divisor_low_ = in.u8();
  divisor_high_ = in.u8();
  overrun_ = in.boolean();
  thr_empty_interrupt_ = in.boolean();
  irq_level_ = in.boolean();
}

}  // namespace vmm
