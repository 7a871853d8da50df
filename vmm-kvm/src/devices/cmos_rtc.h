#pragma once
// MC146818 CMOS real-time clock and NVRAM at 0x70 (index; bit 7 = NMI mask)
// and 0x71 (data), IRQ 8. Wall time is `base_unix_seconds` (chosen once when
// the machine is built, a logged input) plus the guest Clock, so the RTC
// never reads host time itself. Supports BCD/binary and 12/24-hour formats,
// the update-in-progress flag, and periodic, update-ended and alarm
// interrupts.
#include <cstdint>

#include "devices/device.h"

namespace vmm {

class CmosRtc final : public PioDevice, public TimedDevice {
 public:
  static constexpr uint16_t kIndexPort = 0x70;
  static constexpr uint16_t kDataPort = 0x71;
  static constexpr unsigned kIrq = 8;

  CmosRtc(Clock& clock, IrqSink& irqs, int64_t base_unix_seconds);

  std::string_view name() const override { return "rtc"; }
  void save(librr::ByteWriter& out) const override;
  void load(librr::ByteReader& in) override;

  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;

  uint64_t next_deadline_ns() const override;
  void advance_to(uint64_t now_ns) override;

  // Current wall time as the guest sees it (seconds since the Unix epoch).
  int64_t guest_unix_seconds();

 private:
  uint8_t read_register(uint8_t index);
  void write_register(uint8_t index, uint8_t value);
  uint8_t encode(unsigned value) const;  // BCD or binary per register B
  unsigned decode(uint8_t value) const;
  // Periodic interrupt period from register A's rate bits, 0 when off.
  uint64_t periodic_period_ns() const;
  void raise(uint8_t flags);
  void reschedule(uint64_t now_ns);
  // Rebuilds the time offset from time registers the guest wrote while SET was on.
  void commit_written_time();

  Clock& clock_;
  IrqSink& irqs_;
  int64_t base_unix_seconds_;
  int64_t guest_offset_seconds_ = 0;  // guest-set time minus base+clock
  uint8_t index_ = 0;
  uint8_t ram_[128] = {};  // registers 0x00-0x0d plus NVRAM
  bool irq_level_ = false;
  uint64_t next_periodic_ns_ = TimedDevice::kNoDeadline;
  uint64_t next_second_ns_ = TimedDevice::kNoDeadline;  // update-ended/alarm check
};

}  // namespace vmm
