#pragma once
// The i8042 keyboard controller at 0x60 (data) / 0x64 (status/command), just
// enough for guests to reset the machine (command 0xFE, or clearing bit 0 of
// the output port with 0xD1) and for drivers to probe it without a keyboard.
#include <cstdint>
#include <deque>

#include "devices/device.h"
#include "devices/power_control.h"

namespace vmm {

class I8042 final : public PioDevice {
 public:
  static constexpr uint16_t kDataPort = 0x60;
  static constexpr uint16_t kCommandPort = 0x64;

  explicit I8042(PowerControl& power) : power_(power) {}
  std::string_view name() const override { return "i8042"; }
  void save(librr::ByteWriter& out) const override;
  void load(librr::ByteReader& in) override;

  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;

 private:
  void command(uint8_t value);
  void data_write(uint8_t value);
  void respond(uint8_t value);

  PowerControl& power_;
  uint8_t command_byte_ = 0x45;  // translate, system flag, keyboard interrupt enabled
  uint8_t pending_command_ = 0;  // command waiting for its data byte, 0 if none
  uint8_t output_port_ = 0x01;   // bit 0: CPU reset line (active low)
  std::deque<uint8_t> output_;   // bytes for the guest to read from 0x60
};

}  // namespace vmm
