#pragma once
// Dual 8259A programmable interrupt controller (master at 0x20/0x21, slave at
// 0xa0/0xa1 cascaded on master IRQ 2, ELCR at 0x4d0/0x4d1). It is the only
// interrupt controller of the machine: no in-kernel irqchip, so the vector
// the guest receives is computed here and injected with KVM_INTERRUPT.
#include <cstdint>

#include "devices/device.h"

namespace vmm {

class Pic8259 final : public PioDevice, public IrqSink {
 public:
  static constexpr uint16_t kMasterBase = 0x20;
  static constexpr uint16_t kSlaveBase = 0xa0;
  static constexpr uint16_t kElcrBase = 0x4d0;

  Pic8259();

  std::string_view name() const override { return "pic"; }
  void save(librr::ByteWriter& out) const override;
  void load(librr::ByteReader& in) override;

  void pio_read(uint16_t port, std::span<uint8_t> data) override;
  void pio_write(uint16_t port, std::span<const uint8_t> data) override;

  // Line 0..15 (8..15 on the slave). Edge-triggered lines latch a request on
  // a rising edge; level-triggered lines (ICW1 LTIM or ELCR) follow the level.
  void set_irq(unsigned line, bool level) override;

  // True when the master would assert INTR to the CPU.
  bool has_pending_interrupt() const;
  // The CPU's interrupt acknowledge cycle: moves the winning request to
  // in-service (unless auto-EOI) and returns its vector. With nothing pending
  // this is a spurious IRQ 7 (master vector base + 7), as on real hardware.
  uint8_t acknowledge();

  // Register views for tests and diagnostics.
  uint8_t irr(unsigned chip) const { return chips_[chip].irr; }
  uint8_t isr(unsigned chip) const { return chips_[chip].isr; }
  uint8_t imr(unsigned chip) const { return chips_[chip].imr; }

 private:
  struct Chip {
    uint8_t irr = 0;          // interrupt request register
    uint8_t isr = 0;          // in-service register
    uint8_t imr = 0;          // interrupt mask register
    uint8_t line_levels = 0;  // current input levels, for edge detection
    uint8_t elcr = 0;         // per-line level-trigger mode (edge/level control)
    uint8_t vector_base = 0;
    uint8_t lowest_priority_rotation = 0;  // "priority_add": line with top priority
    uint8_t init_step = 0;                 // 0 = operational, 1..3 = expecting ICW2..ICW4
    bool expect_icw4 = false;
    bool single_mode = false;
    bool level_triggered_all = false;  // ICW1 LTIM
    bool auto_eoi = false;
    bool rotate_on_auto_eoi = false;
    bool special_fully_nested = false;
    bool special_mask = false;
    bool read_isr = false;  // OCW3 RR/RIS: which of IRR/ISR port 0 reads
    bool poll_next_read = false;
    uint8_t elcr_writable_mask = 0xff;
    // The master's cascade input follows the slave's output as a level, so a
    // second slave request pending across an acknowledge is never lost.
    uint8_t wired_level_mask = 0;

    uint8_t level_mask() const {
      return static_cast<uint8_t>((level_triggered_all ? 0xff : elcr) | wired_level_mask);
    }
    void set_line(unsigned irq, bool level);
    // Highest-priority set bit of `mask` counted from the rotation point, 8 if none.
    unsigned priority_of(uint8_t mask) const;
    // Line that would be signalled now, or -1.
    int pending_line(bool is_master) const;
    void acknowledge_line(unsigned irq);
    void write_command(uint8_t value);
    void write_data(uint8_t value);
    void reset_for_icw1();
    void save(librr::ByteWriter& out) const;
    void load(librr::ByteReader& in);
  };

  // Drives master IRQ 2 from the slave's output.
  void update_cascade();
  uint8_t poll(unsigned chip);

  Chip chips_[2];
};

}  // namespace vmm
