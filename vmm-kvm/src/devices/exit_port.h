#pragma once
// The debug exit port at 0xf4 (QEMU's isa-debug-exit): a write of value v
// ends the machine with exit status v (rr-vmm exits with v itself, QEMU with
// (v << 1) | 1). Reads return 0xff like an empty bus.
#include "devices/device.h"
#include "devices/power_control.h"

namespace vmm {

class ExitPort final : public PioDevice {
 public:
  static constexpr uint16_t kPort = 0xf4;
  static constexpr uint16_t kSize = 4;

  explicit ExitPort(PowerControl& power) : power_(power) {}
  std::string_view name() const override { return "exit_port"; }
  // Stateless: nothing to save beyond an empty section.
  void save(librr::ByteWriter&) const override {}
  void load(librr::ByteReader&) override {}

  void pio_read(uint16_t, std::span<uint8_t> data) override {
    for (auto& byte : data) byte = 0xff;
  }
  void pio_write(uint16_t, std::span<const uint8_t> data) override {
    if (!data.empty()) power_.request_exit(data[0]);
  }

 private:
  PowerControl& power_;
};

}  // namespace vmm
