#include "devices/virtio_mmio.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

namespace vmm::virtio {
namespace {

constexpr uint32_t kSaveMagic = 0x4f495652;  // "RVIO"
constexpr uint32_t kSaveVersion = 1;

uint32_t low32(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t high32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
void set_low32(uint64_t& v, uint32_t x) { v = (v & 0xffffffff00000000ull) | x; }
void set_high32(uint64_t& v, uint32_t x) { v = (v & 0xffffffffull) | (uint64_t{x} << 32); }

}  // namespace

LogSink stderr_log_sink() {
  return [](std::string_view line) {
    std::fprintf(stderr, "rr-vmm: %.*s\n", static_cast<int>(line.size()), line.data());
  };
}

VirtioMmioDevice::VirtioMmioDevice(std::string name, uint32_t device_id, uint64_t device_features,
                                   std::vector<uint16_t> queue_max_sizes, Wiring wiring)
    : name_(std::move(name)),
      device_id_(device_id),
      device_features_(device_features | kFeatureVersion1),
      wiring_(std::move(wiring)) {
  if (!wiring_.log) wiring_.log = stderr_log_sink();
  for (uint16_t max : queue_max_sizes) queues_.emplace_back(max);
  for (Virtqueue& q : queues_) q.reset();
}

void VirtioMmioDevice::mmio_read(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (offset >= reg::kConfig) {
    // Config space allows 1-, 2- and 4-byte accesses (8-byte ones split by
    // the driver); bytes past the device's config read as zero.
    std::span<const uint8_t> config = config_space();
    uint64_t rel = offset - reg::kConfig;
    for (size_t i = 0; i < data.size(); ++i)
      if (rel + i < config.size()) data[i] = config[rel + i];
    return;
  }
  // Registers are 32 bits wide and must be accessed as such (4.2.2.2).
  if (data.size() != 4 || offset % 4 != 0) return;
  uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, 4);
}

void VirtioMmioDevice::mmio_write(uint64_t offset, std::span<const uint8_t> data) {
  // The device configuration is read-only for the devices implemented here.
  if (offset >= reg::kConfig) return;
  if (data.size() != 4 || offset % 4 != 0) return;
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  write_register(offset, value);
}

uint32_t VirtioMmioDevice::read_register(uint64_t offset) const {
  const Virtqueue* q = selected_queue();
  switch (offset) {
    case reg::kMagicValue:
      return kMagic;
    case reg::kVersion:
      return kMmioVersion;
    case reg::kDeviceId:
      return device_id_;
    case reg::kVendorId:
      return kVendorId;
    case reg::kDeviceFeatures:
      if (device_features_sel_ == 0) return low32(device_features_);
      if (device_features_sel_ == 1) return high32(device_features_);
      return 0;
    case reg::kQueueNumMax:
      return q ? q->max_size() : 0;
    case reg::kQueueReady:
      return q && q->ready ? 1 : 0;
    case reg::kInterruptStatus:
      return interrupt_status_;
    case reg::kStatus:
      return status_;
    case reg::kConfigGeneration:
      return config_generation_;
    default:
      return 0;
  }
}

void VirtioMmioDevice::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case reg::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case reg::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case reg::kDriverFeatures:
      // Features are frozen once FEATURES_OK is set (3.1.1).
      if (status_ & status::kFeaturesOk) return;
      if (driver_features_sel_ == 0) set_low32(driver_features_, value);
      if (driver_features_sel_ == 1) set_high32(driver_features_, value);
      return;
    case reg::kQueueSel:
      queue_sel_ = value;
      return;
    case reg::kQueueNotify:
      if (!operational()) return;
      if (value >= queues_.size() || !queues_[value].ready) return;
      guarded(value, [&] { process_queue(value); });
      return;
    case reg::kInterruptAck:
      interrupt_status_ &= ~value;
      update_irq();
      return;
    case reg::kStatus:
      write_status(value);
      return;
    case reg::kQueueReady:
      write_queue_ready(value);
      return;
    default:
      break;
  }
  // The remaining registers configure the selected queue; the driver may only
  // change them while the queue is not live (4.2.3.2).
  Virtqueue* q = selected_queue();
  if (!q || !queue_registers_writable()) return;
  switch (offset) {
    case reg::kQueueNum:
      // Checked when the queue is enabled; stored as written (truncated to
      // the 16 bits a split queue size can hold, so out-of-range values stay
      // out of range).
      q->size = value > 0xffff ? 0 : static_cast<uint16_t>(value);
      return;
    case reg::kQueueDescLow:
      set_low32(q->desc_addr, value);
      return;
    case reg::kQueueDescHigh:
      set_high32(q->desc_addr, value);
      return;
    case reg::kQueueDriverLow:
      set_low32(q->driver_addr, value);
      return;
    case reg::kQueueDriverHigh:
      set_high32(q->driver_addr, value);
      return;
    case reg::kQueueDeviceLow:
      set_low32(q->device_addr, value);
      return;
    case reg::kQueueDeviceHigh:
      set_high32(q->device_addr, value);
      return;
    default:
      return;  // read-only or unknown register: ignored
  }
}

Virtqueue* VirtioMmioDevice::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}
const Virtqueue* VirtioMmioDevice::selected_queue() const {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

bool VirtioMmioDevice::queue_registers_writable() const {
  const Virtqueue* q = selected_queue();
  return q && !q->ready && !(status_ & status::kDriverOk);
}

void VirtioMmioDevice::write_queue_ready(uint32_t value) {
  Virtqueue* q = selected_queue();
  if (!q) return;
  if (value == 0) {
    q->ready = false;
    return;
  }
  if (q->ready || needs_reset()) return;
  q->indirect_allowed = (driver_features_ & kFeatureIndirectDesc) != 0;
  guarded(queue_sel_, [&] {
    q->check_layout(memory());
    q->ready = true;
  });
}

void VirtioMmioDevice::write_status(uint32_t value) {
  if (value == 0) {
    reset();
    return;
  }
  // The driver only ever adds bits (3.1.1); NEEDS_RESET is the device's.
  uint32_t added = value & ~status_ & ~status::kNeedsReset;
  if ((value & status_) != (status_ & ~status::kNeedsReset)) {
    warn(fmt::format("{}: driver cleared status bits ({:#x} -> {:#x}); ignored", name_, status_,
                     value));
    return;
  }
  if (added & status::kFeaturesOk) {
    // Accept only a subset of what we offered, and only modern drivers: the
    // v2 transport has no legacy interface.
    bool subset = (driver_features_ & ~device_features_) == 0;
    bool modern = (driver_features_ & kFeatureVersion1) != 0;
    if (!subset || !modern) {
      warn(fmt::format("{}: rejecting driver features {:#x} (offered {:#x})", name_,
                       driver_features_, device_features_));
      added &= ~status::kFeaturesOk;
    }
  }
  if ((added & status::kDriverOk) && !((status_ | added) & status::kFeaturesOk)) {
    warn(fmt::format("{}: DRIVER_OK without FEATURES_OK; ignored", name_));
    added &= ~status::kDriverOk;
  }
  status_ |= added;
  if (added & status::kDriverOk) guarded(0, [&] { driver_ready(); });
}

void VirtioMmioDevice::reset() {
  status_ = 0;
  device_features_sel_ = driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  interrupt_status_ = 0;
  for (Virtqueue& q : queues_) q.reset();
  reset_device();
  update_irq();
}

void VirtioMmioDevice::signal_used(unsigned index) {
  if (queues_.at(index).interrupt_suppressed(memory())) return;
  interrupt_status_ |= kInterruptUsedBuffer;
  update_irq();
}

void VirtioMmioDevice::enter_error_state(unsigned queue_index, const VirtqueueViolation& v) {
  std::string where = v.descriptor() == kNoDescriptor
                          ? std::string("-")
                          : fmt::format("{}{}", v.descriptor(), v.indirect() ? " (indirect)" : "");
  log(fmt::format("{}: queue {}: descriptor {}: {}; device needs reset", name_, queue_index, where,
                  v.what()));
  status_ |= status::kNeedsReset;
  interrupt_status_ |= kInterruptConfigChange;
  update_irq();
}

void VirtioMmioDevice::warn(std::string_view line) {
  if (warnings_ >= kMaxWarnings) return;
  if (++warnings_ == kMaxWarnings)
    log(fmt::format("{} (further warnings from {} suppressed)", line, name_));
  else
    log(line);
}

void VirtioMmioDevice::update_irq() {
  // virtio-mmio interrupts are level-triggered: the line follows the status.
  if (wiring_.irq) wiring_.irq->set_irq(wiring_.irq_line, interrupt_status_ != 0);
}

void VirtioMmioDevice::save(librr::ByteWriter& out) const {
  out.u32(kSaveMagic);
  out.u32(kSaveVersion);
  out.u32(device_id_);
  out.u64(device_features_);
  out.u32(status_);
  out.u32(device_features_sel_);
  out.u32(driver_features_sel_);
  out.u64(driver_features_);
  out.u32(queue_sel_);
  out.u32(interrupt_status_);
  out.u32(config_generation_);
  out.u32(static_cast<uint32_t>(queues_.size()));
  for (const Virtqueue& q : queues_) q.save(out);
  save_device(out);
}

void VirtioMmioDevice::load(librr::ByteReader& in) {
  auto fail = [&](const std::string& what) {
    throw librr::FormatError(fmt::format("{} snapshot: {}", name_, what),
                             static_cast<int64_t>(in.position()));
  };
  if (in.u32() != kSaveMagic) fail("bad magic");
  if (uint32_t v = in.u32(); v != kSaveVersion) fail(fmt::format("unsupported version {}", v));
  if (uint32_t id = in.u32(); id != device_id_)
    fail(fmt::format("device id {} != {}", id, device_id_));
  if (uint64_t f = in.u64(); f != device_features_)
    fail(fmt::format("device features {:#x} != {:#x}", f, device_features_));
  status_ = in.u32();
  device_features_sel_ = in.u32();
  driver_features_sel_ = in.u32();
  driver_features_ = in.u64();
  // Before FEATURES_OK the register holds whatever the driver wrote; once
  // accepted it must be a modern subset of the offer.
  if ((status_ & status::kFeaturesOk) &&
      ((driver_features_ & ~device_features_) || !(driver_features_ & kFeatureVersion1)))
    fail("accepted driver features not offered by the device");
  queue_sel_ = in.u32();
  interrupt_status_ = in.u32();
  if (interrupt_status_ & ~(kInterruptUsedBuffer | kInterruptConfigChange))
    fail(fmt::format("invalid interrupt status {:#x}", interrupt_status_));
  config_generation_ = in.u32();
  if (uint32_t n = in.u32(); n != queues_.size())
    fail(fmt::format("{} queues saved, device has {}", n, queues_.size()));
  for (Virtqueue& q : queues_) q.load(in);
  load_device(in);
  update_irq();
}

}  // namespace vmm::virtio
