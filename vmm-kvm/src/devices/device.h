#pragma once
// The small interface every userspace device model implements. Devices are
// deterministic functions of (their state, guest accesses, logged inputs):
// they never read host time or host I/O directly; time comes from a Clock and
// external input from a backend whose bytes the recorder logs.
#include <cstdint>
#include <span>
#include <string_view>

#include "librr/bytes.h"

namespace vmm {

// Raises and lowers interrupt request lines (implemented by the PIC).
class IrqSink {
 public:
  virtual ~IrqSink() = default;
  virtual void set_irq(unsigned line, bool level) = 0;
};

// Guest-visible time. Record/replay substitutes a VirtualClock whose value
// changes only at logged (or deterministically derived) points.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now_ns() = 0;
  // Makes now_ns() read `guest_ns` from here on (snapshot restore): time
  // continues from where the snapshot left it.
  virtual void resume_at(uint64_t guest_ns) = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  // Stable name, used as the snapshot section name ("uart0", "pic", ...).
  virtual std::string_view name() const = 0;
  // Complete device state for snapshots; load() must accept what save() wrote
  // and throw librr::FormatError on anything else.
  virtual void save(librr::ByteWriter& out) const = 0;
  virtual void load(librr::ByteReader& in) = 0;
};

// A device on the x86 I/O port bus. `port` is absolute; data is little-endian
// and `data.size()` is 1, 2 or 4.
class PioDevice : public virtual Device {
 public:
  virtual void pio_read(uint16_t port, std::span<uint8_t> data) = 0;
  virtual void pio_write(uint16_t port, std::span<const uint8_t> data) = 0;
};

// A device on the MMIO bus. `offset` is relative to the device's base.
class MmioDevice : public virtual Device {
 public:
  virtual void mmio_read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void mmio_write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// A device whose state changes with time (PIT, RTC). The machine asks every
// timed device for its next deadline, arms one host timer for the earliest,
// and calls advance_to() when the vCPU is stopped at or after that time, so a
// device raises its interrupt lines only at well-defined points of the run
// loop (never from another thread).
class TimedDevice : public virtual Device {
 public:
  static constexpr uint64_t kNoDeadline = UINT64_MAX;
  // Guest-clock time (Clock::now_ns) of the next event, or kNoDeadline.
  virtual uint64_t next_deadline_ns() const = 0;
  // Processes every event due at or before `now_ns` (several missed periodic
  // events coalesce into one interrupt, as a late-serviced line would).
  virtual void advance_to(uint64_t now_ns) = 0;
};

}  // namespace vmm
