#pragma once
// virtio-mmio transport, version 2 (VIRTIO 1.1 section 4.2), shared by every
// virtio device model. A concrete device (net, blk) derives from
// VirtioMmioDevice and supplies its id, features, config space and queue
// processing; the transport owns registers, feature negotiation, the status
// state machine, queues, interrupts and the error state.
//
// Error state: when the guest breaks the virtqueue protocol the device sets
// DEVICE_NEEDS_RESET in its status, raises a configuration-change interrupt,
// logs one line naming device, queue, descriptor and problem, and ignores
// every notify until the driver resets it (writes 0 to Status).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device.h"
#include "devices/virtio_queue.h"
#include "guest_memory.h"

namespace vmm::virtio {

// Receives one human-readable line per noteworthy event (errors only).
using LogSink = std::function<void(std::string_view line)>;
// Writes "rr-vmm: <line>" to stderr.
LogSink stderr_log_sink();

// Register offsets (VIRTIO 1.1, table 4.1).
namespace reg {
inline constexpr uint64_t kMagicValue = 0x000;
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfig = 0x100;
}  // namespace reg

inline constexpr uint32_t kMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kMmioVersion = 2;
inline constexpr uint32_t kVendorId = 0x4d565252;  // "RRVM"
inline constexpr uint64_t kMmioWindowSize = 0x1000;

// Device status bits (VIRTIO 1.1, 2.1).
namespace status {
inline constexpr uint32_t kAcknowledge = 1;
inline constexpr uint32_t kDriver = 2;
inline constexpr uint32_t kDriverOk = 4;
inline constexpr uint32_t kFeaturesOk = 8;
inline constexpr uint32_t kNeedsReset = 64;
inline constexpr uint32_t kFailed = 128;
}  // namespace status

// Interrupt status bits.
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

// Transport-level feature bits.
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// What a device needs from the machine.
struct Wiring {
  GuestMemory memory;      // guest RAM; must be mapped before the device is built
  IrqSink* irq = nullptr;  // may be null (tests, fuzzing): interrupts then only set status
  unsigned irq_line = 0;
  LogSink log;  // defaults to stderr_log_sink() if empty
};

class VirtioMmioDevice : public MmioDevice {
 public:
  // Non-fatal driver mistakes logged per device before going quiet.
  static constexpr unsigned kMaxWarnings = 16;

  VirtioMmioDevice(std::string name, uint32_t device_id, uint64_t device_features,
                   std::vector<uint16_t> queue_max_sizes, Wiring wiring);

  std::string_view name() const final { return name_; }
  void mmio_read(uint64_t offset, std::span<uint8_t> data) final;
  void mmio_write(uint64_t offset, std::span<const uint8_t> data) final;
  void save(librr::ByteWriter& out) const final;
  void load(librr::ByteReader& in) final;

  uint32_t device_status() const { return status_; }
  bool needs_reset() const { return (status_ & status::kNeedsReset) != 0; }
  uint32_t interrupt_status() const { return interrupt_status_; }
  uint64_t device_features() const { return device_features_; }
  uint64_t driver_features() const { return driver_features_; }
  size_t num_queues() const { return queues_.size(); }
  const Virtqueue& queue(size_t index) const { return queues_.at(index); }

 protected:
  // The device-specific configuration space (read-only from the guest).
  virtual std::span<const uint8_t> config_space() const = 0;
  // The driver notified queue `index`; called only while DRIVER_OK is set and
  // the device is not in the error state. May throw VirtqueueViolation.
  virtual void process_queue(unsigned index) = 0;
  // Called after DRIVER_OK is first set (e.g. to flush pending input).
  virtual void driver_ready() {}
  // Device-specific part of a reset (the transport resets its own state).
  virtual void reset_device() {}
  virtual void save_device(librr::ByteWriter& out) const = 0;
  virtual void load_device(librr::ByteReader& in) = 0;

  bool operational() const {
    return (status_ & status::kDriverOk) && !(status_ & (status::kNeedsReset | status::kFailed));
  }
  const GuestMemory& memory() const { return wiring_.memory; }
  Virtqueue& queue_mut(unsigned index) { return queues_.at(index); }
  // Tells the driver that queue `index` has new used buffers (unless it
  // suppressed interrupts for that queue).
  void signal_used(unsigned index);
  // Runs `body` for queue `index`, entering the error state if it throws a
  // VirtqueueViolation.
  template <class Body>
  void guarded(unsigned index, Body&& body) {
    try {
      body();
    } catch (const VirtqueueViolation& violation) {
      enter_error_state(index, violation);
    }
  }
  void enter_error_state(unsigned queue_index, const VirtqueueViolation& violation);
  void log(std::string_view line) const { wiring_.log(line); }
  // For driver mistakes that are not fatal (refused status or feature
  // writes): logged at most kMaxWarnings times per device, so that a guest
  // cannot flood the host log.
  void warn(std::string_view line);

 private:
  uint32_t read_register(uint64_t offset) const;
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_ready(uint32_t value);
  Virtqueue* selected_queue();
  const Virtqueue* selected_queue() const;
  bool queue_registers_writable() const;
  void reset();
  void update_irq();

  std::string name_;
  uint32_t device_id_;
  uint64_t device_features_;
  Wiring wiring_;
  std::vector<Virtqueue> queues_;

  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t interrupt_status_ = 0;
  uint32_t config_generation_ = 0;
  unsigned warnings_ = 0;  // host-side only, not saved
};

}  // namespace vmm::virtio
