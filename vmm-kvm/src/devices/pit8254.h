#pragma once
// Intel 8254 programmable interval timer at 0x40-0x43 (input clock 1193182 Hz),
// channel 0 wired to IRQ 0, channel 2 gated by port 0x61 bit 0 (its output
// readable at 0x61 bit 5, as PC firmware and Linux's calibration expect).
// Counters are computed from the guest Clock, not ticked: reading a counter
// is a pure function of (load time, now).
#include <cstdint>

#include "devices/device.h"

namespace vmm {

class Pit8254 final : public PioDevice, public TimedDevice {
 public:
  static constexpr uint64_t kInputHz = 1193182;
  static constexpr uint16_t kBasePort = 0x40;
  static constexpr uint16_t kControlPort = 0x43;
  static constexpr uint16_t kSystemControlPort = 0x61;

  Pit8254(Clock& clock, IrqSink& irqs, unsigned irq_line = 0);

  std::string_view name() const override { return "pit"; }
  void save(librr::ByteWriter& out) const override;
  void load(librr::ByteReader& in) override;

  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;

  uint64_t next_deadline_ns() const override;
  void advance_to(uint64_t now_ns) override;

  // Counter value a guest latch would read now (for tests and diagnostics).
  uint16_t current_count(unsigned channel);

 private:
  enum AccessMode : uint8_t { kLatch = 0, kLowByte = 1, kHighByte = 2, kWord = 3 };
  struct Channel {
    uint32_t reload = 0x10000;  // written count; 0 means 65536
    uint8_t mode = 0;
    uint8_t access = kWord;
    bool bcd = false;
    bool gate = true;
    bool counting = false;      // a count has been written since the control word
    uint64_t load_time_ns = 0;  // guest time the count was loaded
    bool write_high_next = false;
    uint8_t write_low_byte = 0;
    bool read_high_next = false;
    bool count_latched = false;
    uint16_t latched_count = 0;
    uint8_t latched_access = kWord;  // access mode when latched (word reads lsb then msb)
    bool latched_high_next = false;
    bool status_latched = false;
    uint8_t latched_status = 0;
    bool oneshot_fired = false;  // mode 0/1/4/5 interrupt already delivered
    uint64_t next_irq_ns = TimedDevice::kNoDeadline;
  };

  uint64_t elapsed_ticks(const Channel& c, uint64_t now_ns) const;
  uint16_t count_at(const Channel& c, uint64_t now_ns) const;
  bool output_at(const Channel& c, uint64_t now_ns) const;
  void load_count(unsigned index, uint32_t value);
  void write_control(uint8_t value);
  uint8_t read_counter(unsigned index);
  void latch_count(Channel& c);
  // Recomputes channel 0's next interrupt time strictly after `after_ns`.
  void schedule_irq(Channel& c, uint64_t after_ns);

  Clock& clock_;
  IrqSink& irqs_;
  unsigned irq_line_;
  Channel channels_[3];
  uint8_t speaker_bits_ = 0;  // port 0x61 bits 0-1 (gate 2, speaker enable)
};

}  // namespace vmm
