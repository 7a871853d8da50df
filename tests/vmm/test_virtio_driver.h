#pragma once
// A minimal virtio driver for tests: it owns a host buffer used as guest RAM
// (through a real GuestMemory) and drives a virtio-mmio device exactly as a
// guest would, through MMIO register accesses and ring contents.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio_mmio.h"
#include "guest_memory.h"

namespace vmm::virtio::testing {

inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;

// Records the level of each interrupt line.
class RecordingIrq : public IrqSink {
 public:
  void set_irq(unsigned line, bool level) override {
    if (line >= levels.size()) levels.resize(line + 1);
    levels[line] = level;
    ++changes;
  }
  bool level(unsigned line) const { return line < levels.size() && levels[line]; }
  std::vector<bool> levels;
  int changes = 0;
};

// Guest RAM plus the wiring a device needs; log lines are captured.
struct TestGuest {
  static constexpr uint64_t kRamBytes = 1 << 20;
  static constexpr unsigned kIrqLine = 5;
  std::vector<uint8_t> ram = std::vector<uint8_t>(kRamBytes);
  GuestMemory memory{ram.data(), ram.size()};
  RecordingIrq irq;
  std::vector<std::string> log_lines;

  Wiring wiring() {
    return Wiring{memory, &irq, kIrqLine,
                  [this](std::string_view line) { log_lines.emplace_back(line); }};
  }
  void put(uint64_t gpa, const void* src, size_t n) { std::memcpy(ram.data() + gpa, src, n); }
  template <class T>
  void put_obj(uint64_t gpa, const T& v) {
    put(gpa, &v, sizeof v);
  }
  template <class T>
  T get_obj(uint64_t gpa) const {
    T v;
    std::memcpy(&v, ram.data() + gpa, sizeof v);
    return v;
  }
  std::vector<uint8_t> get(uint64_t gpa, size_t n) const {
    return {ram.begin() + static_cast<long>(gpa), ram.begin() + static_cast<long>(gpa + n)};
  }
};

// Ring placement for queue q: 64 KiB apart from 0x10000 on; data buffers
// are placed from 0x80000 on by the tests.
struct QueueRings {
  uint16_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;
  uint16_t avail_idx = 0;  // driver's next avail index
  uint16_t used_seen = 0;  // used entries consumed by the driver
};

class TestDriver {
 public:
  TestDriver(VirtioMmioDevice& device, TestGuest& guest) : device_(device), guest_(guest) {}

  uint32_t read32(uint64_t offset) {
    uint8_t buf[4];
    device_.mmio_read(offset, buf);
    uint32_t v;
    std::memcpy(&v, buf, 4);
    return v;
  }
  void write32(uint64_t offset, uint32_t v) {
    uint8_t buf[4];
    std::memcpy(buf, &v, 4);
    device_.mmio_write(offset, buf);
  }
  uint64_t device_features() {
    write32(reg::kDeviceFeaturesSel, 0);
    uint64_t lo = read32(reg::kDeviceFeatures);
    write32(reg::kDeviceFeaturesSel, 1);
    return lo | (uint64_t{read32(reg::kDeviceFeatures)} << 32);
  }
  // ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether the device
  // kept FEATURES_OK set.
  bool negotiate(uint64_t features) {
    write32(reg::kStatus, 0);
    write32(reg::kStatus, status::kAcknowledge);
    write32(reg::kStatus, status::kAcknowledge | status::kDriver);
    write32(reg::kDriverFeaturesSel, 0);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(features));
    write32(reg::kDriverFeaturesSel, 1);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    write32(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    return (read32(reg::kStatus) & status::kFeaturesOk) != 0;
  }
  // Learns the ring placement of an already-live queue (e.g. after a
  // snapshot restore) without touching device or memory.
  QueueRings& attach_rings(unsigned q, uint16_t size) {
    if (rings_.size() <= q) rings_.resize(q + 1);
    QueueRings& r = rings_[q];
    r = QueueRings{};
    r.size = size;
    r.desc = 0x10000ull * (q + 1);
    r.avail = r.desc + 0x4000;
    r.used = r.desc + 0x8000;
    r.avail_idx = guest_.get_obj<uint16_t>(r.avail + 2);
    r.used_seen = guest_.get_obj<uint16_t>(r.used + 2);
    return r;
  }
  QueueRings& setup_queue(unsigned q, uint16_t size) {
    QueueRings& r = attach_rings(q, size);
    r.avail_idx = r.used_seen = 0;
    std::memset(guest_.ram.data() + r.desc, 0, 0x10000);
    write32(reg::kQueueSel, q);
    write32(reg::kQueueNum, size);
    write32(reg::kQueueDescLow, static_cast<uint32_t>(r.desc));
    write32(reg::kQueueDescHigh, 0);
    write32(reg::kQueueDriverLow, static_cast<uint32_t>(r.avail));
    write32(reg::kQueueDriverHigh, 0);
    write32(reg::kQueueDeviceLow, static_cast<uint32_t>(r.used));
    write32(reg::kQueueDeviceHigh, 0);
    write32(reg::kQueueReady, 1);
    return r;
  }
  void driver_ok() { write32(reg::kStatus, read32(reg::kStatus) | status::kDriverOk); }
  // Full bring-up with the device's offered features and every queue of
  // `size` entries.
  void bring_up(uint16_t size = 16) {
    ASSERT_TRUE(negotiate(device_features()));
    for (unsigned q = 0; q < device_.num_queues(); ++q) setup_queue(q, size);
    driver_ok();
    ASSERT_EQ(read32(reg::kStatus) & status::kNeedsReset, 0u);
  }

  QueueRings& rings(unsigned q) { return rings_.at(q); }
  void put_desc(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
                uint16_t next = 0) {
    uint64_t at = table + 16ull * index;
    guest_.put_obj(at, addr);
    guest_.put_obj(at + 8, len);
    guest_.put_obj(at + 12, flags);
    guest_.put_obj(at + 14, next);
  }
  void desc(unsigned q, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags,
            uint16_t next = 0) {
    put_desc(rings(q).desc, index, addr, len, flags, next);
  }
  // Publishes `head` in the avail ring (does not notify).
  void make_available(unsigned q, uint16_t head) {
    QueueRings& r = rings(q);
    guest_.put_obj<uint16_t>(r.avail + 4 + 2ull * (r.avail_idx % r.size), head);
    ++r.avail_idx;
    guest_.put_obj<uint16_t>(r.avail + 2, r.avail_idx);
  }
  void set_avail_idx(unsigned q, uint16_t idx) {
    rings(q).avail_idx = idx;
    guest_.put_obj<uint16_t>(rings(q).avail + 2, idx);
  }
  void notify(unsigned q) { write32(reg::kQueueNotify, q); }

  struct Used {
    uint32_t id, len;
  };
  uint16_t used_idx(unsigned q) { return guest_.get_obj<uint16_t>(rings(q).used + 2); }
  // Next used element, or id 0xffffffff if none.
  Used next_used(unsigned q) {
    QueueRings& r = rings(q);
    if (used_idx(q) == r.used_seen) return {0xffffffff, 0};
    uint64_t at = r.used + 4 + 8ull * (r.used_seen % r.size);
    ++r.used_seen;
    return {guest_.get_obj<uint32_t>(at), guest_.get_obj<uint32_t>(at + 4)};
  }

 private:
  VirtioMmioDevice& device_;
  TestGuest& guest_;
  std::vector<QueueRings> rings_;
};

}  // namespace vmm::virtio::testing
