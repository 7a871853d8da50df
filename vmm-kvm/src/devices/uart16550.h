#pragma once
// NS16550A UART (COM1: 0x3f8, IRQ 4) with 16-byte receive FIFO. Transmission
// is instantaneous: a byte written to THR goes straight to the output sink
// and THR is empty again, so the guest never waits on a baud rate.
// The interrupt output is a level (IIR bit 0 clear) handed to the PIC; like
// QEMU, it is not gated by MCR OUT2, so guests tested on QEMU behave alike.
#include <cstdint>
#include <functional>

#include "devices/device.h"
#include "devices/serial_backends.h"

namespace vmm {

class Uart16550 final : public PioDevice {
 public:
  static constexpr uint16_t kCom1Base = 0x3f8;
  static constexpr unsigned kCom1Irq = 4;
  static constexpr size_t kFifoSize = 16;

  Uart16550(IrqSink& irqs, SerialOutput& output, SerialInput* input, uint16_t base = kCom1Base,
            unsigned irq = kCom1Irq);

  std::string_view name() const override { return "uart0"; }
  void save(librr::ByteWriter& out) const override;
  void load(librr::ByteReader& in) override;

  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;

  // Moves pending input from the backend into the receive FIFO (as much as
  // fits). The machine calls this only at asynchronous stops. Returns the
  // number of bytes accepted.
  size_t pull_input();
  // Puts bytes directly into the receive FIFO (replay, tests). Bytes beyond
  // the FIFO's room set the overrun flag and are dropped, as on hardware.
  void receive(std::span<const uint8_t> bytes);
  // Called when the guest drained the FIFO while the backend still has data,
  // so the machine can schedule another pull.
  void set_wants_input_callback(std::function<void()> callback) {
    wants_input_ = std::move(callback);
  }

  size_t rx_fifo_level() const { return rx_count_; }

 private:
  uint8_t read_register(unsigned offset);
  void write_register(unsigned offset, uint8_t value);
  size_t rx_capacity() const { return fifo_enabled() ? kFifoSize : 1; }
  bool fifo_enabled() const { return fcr_ & 0x01; }
  size_t rx_trigger_level() const;
  // Interrupt identification: the highest-priority pending source.
  uint8_t interrupt_id() const;
  void update_irq();
  uint8_t modem_status() const;
  void transmit(uint8_t byte);

  IrqSink& irqs_;
  SerialOutput& output_;
  SerialInput* input_;
  uint16_t base_;
  unsigned irq_;
  std::function<void()> wants_input_;

  // Receive FIFO as a ring buffer.
  uint8_t rx_fifo_[kFifoSize] = {};
  size_t rx_head_ = 0;
  size_t rx_count_ = 0;

  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t fcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t divisor_low_ = 0x0c;  // 9600 baud, the firmware default
  uint8_t divisor_high_ = 0;
  bool overrun_ = false;
  // THR-empty interrupt: raised when THR empties, cleared by reading IIR
  // while it is the reported source, or by writing THR.
  bool thr_empty_interrupt_ = false;
  bool irq_level_ = false;
};

}  // namespace vmm
