#pragma once
// Test doubles for device unit tests: a settable clock and an IRQ recorder.
#include <cstdint>
#include <vector>

#include "devices/device.h"

namespace vmm::testing {

class ManualClock final : public Clock {
 public:
  uint64_t now_ns() override { return now; }
  void resume_at(uint64_t guest_ns) override { now = guest_ns; }
  uint64_t now = 0;
};

class RecordingIrqs final : public IrqSink {
 public:
  void set_irq(unsigned line, bool level) override {
    if (line < 16) {
      if (level && !levels[line]) ++rising_edges[line];
      levels[line] = level;
    }
  }
  bool levels[16] = {};
  unsigned rising_edges[16] = {};
};

inline uint8_t in8(PioDevice& device, uint16_t port) {
  uint8_t value = 0;
  device.pio_read(port, std::span<uint8_t>(&value, 1));
  return value;
}
inline void out8(PioDevice& device, uint16_t port, uint8_t value) {
  device.pio_write(port, std::span<const uint8_t>(&value, 1));
}

}  // namespace vmm::testing
