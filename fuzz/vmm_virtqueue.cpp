// libFuzzer target for the virtio-mmio transport, the split virtqueue walker
// and the net/blk request handling. The input is a program run against one
// device over 64 KiB of guest RAM (a heap buffer, so ASan catches any access
// outside guest RAM):
//   byte 0: bit 0 selects the device (0 = virtio-net, 1 = virtio-blk)
//   then a sequence of operations, each an opcode byte and its arguments
//   (all little-endian; a truncated operation ends the program):
//     0 mmio_write  u16 offset, u32 value          register/config write
//     1 mmio_read   u16 offset, u8 size            1/2/4/8-byte read
//     2 poke        u16 gpa, u8 len, len bytes     guest memory contents
//     3 notify      u8 queue
//     4 frame       u16 len                        deliver_frame (net), pattern bytes
//     5 bring_up    u8 size_log2, u8 feature_mask  negotiate + queues + DRIVER_OK
//     6 desc        u8 q, u8 idx, u16 addr, u16 len, u8 flags, u8 next
//     7 publish     u8 q, u16 head                 avail ring slot + idx++
//     8 snapshot                                   save, load, save again: identical
//     9 avail_idx   u8 q, u16 idx                  raw avail idx write
//    10 reset                                      Status = 0
// Invariants checked: no crash or sanitizer report, save/load round-trips,
// the device only leaves the error state through reset.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"

namespace {

using vmm::virtio::VirtioBlk;
using vmm::virtio::VirtioMmioDevice;
using vmm::virtio::VirtioNet;
namespace reg = vmm::virtio::reg;
namespace status = vmm::virtio::status;

constexpr uint64_t kRamBytes = 64 * 1024;

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  template <class T>
  bool take(T& out) {
    if (size_ - pos_ < sizeof(T)) return false;
    std::memcpy(&out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  const uint8_t* take_bytes(size_t n) {
    if (size_ - pos_ < n) return nullptr;
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A 32 KiB base image in a memfd, reachable by path for CowDisk.
const std::string& base_image_path() {
  static std::string path = [] {
    int fd = ::memfd_create("fuzz-blk-base", 0);  // kept open for the process lifetime
    std::vector<uint8_t> image(64 * 512);
    for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<uint8_t>(i * 13);
    if (fd < 0 || ::write(fd, image.data(), image.size()) != static_cast<ssize_t>(image.size()))
      __builtin_trap();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

struct Harness {
  std::vector<uint8_t> ram = std::vector<uint8_t>(kRamBytes);
  vmm::GuestMemory memory{ram.data(), ram.size()};
  size_t log_lines = 0;
  std::unique_ptr<VirtioMmioDevice> device;
  VirtioNet* net = nullptr;
  uint16_t avail_idx[2] = {0, 0};
  uint16_t queue_size[2] = {0, 0};

  vmm::virtio::Wiring wiring() {
    return {memory, nullptr, 0, [this](std::string_view) { ++log_lines; }};
  }
  std::unique_ptr<VirtioMmioDevice> make(bool blk) {
    if (blk)
      return std::make_unique<VirtioBlk>(wiring(),
                                         std::make_unique<vmm::block::CowDisk>(base_image_path()));
    return std::make_unique<VirtioNet>(wiring(), VirtioNet::Mac{2, 0, 0, 0, 0, 1},
                                       vmm::net::make_null_backend());
  }

  void write32(uint64_t offset, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    device->mmio_write(offset, b);
  }
  uint32_t read32(uint64_t offset) {
    uint8_t b[4];
    device->mmio_read(offset, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  }
  static uint64_t desc_table(unsigned q) { return 0x1000 + 0x3000ull * q; }

  void bring_up(uint8_t size_log2, uint8_t feature_mask) {
    write32(reg::kStatus, 0);
    write32(reg::kStatus, status::kAcknowledge | status::kDriver);
    // Offered features, some dropped by the mask (VERSION_1 is bit 32, kept
    // unless mask bit 7 is set, to also exercise the rejection path).
    uint64_t offered = device->device_features();
    uint64_t wanted = offered & ~(static_cast<uint64_t>(feature_mask & 0x7f) << 2);
    if (feature_mask & 0x80) wanted &= ~vmm::virtio::kFeatureVersion1;
    write32(reg::kDriverFeaturesSel, 0);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(wanted));
    write32(reg::kDriverFeaturesSel, 1);
    write32(reg::kDriverFeatures, static_cast<uint32_t>(wanted >> 32));
    write32(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    uint16_t size = static_cast<uint16_t>(1u << (size_log2 % 9));
    for (unsigned q = 0; q < device->num_queues(); ++q) {
      write32(reg::kQueueSel, q);
      write32(reg::kQueueNum, size);
      write32(reg::kQueueDescLow, static_cast<uint32_t>(desc_table(q)));
      write32(reg::kQueueDriverLow, static_cast<uint32_t>(desc_table(q) + 0x1000));
      write32(reg::kQueueDeviceLow, static_cast<uint32_t>(desc_table(q) + 0x2000));
      write32(reg::kQueueReady, 1);
      avail_idx[q] = 0;
      queue_size[q] = size;
    }
    write32(reg::kStatus, read32(reg::kStatus) | status::kDriverOk);
  }

  void poke(uint64_t gpa, const void* src, size_t n) {
    if (gpa < kRamBytes && n <= kRamBytes - gpa) std::memcpy(ram.data() + gpa, src, n);
  }

  void snapshot_round_trip(bool blk) {
    librr::ByteWriter first;
    device->save(first);
    auto copy = make(blk);
    librr::ByteReader in(first.data());
    copy->load(in);  // must accept what save() wrote
    in.expect_end();
    librr::ByteWriter second;
    copy->save(second);
    if (first.data() != second.data()) __builtin_trap();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Input in(data, size);
  uint8_t selector = 0;
  in.take(selector);
  bool blk = selector & 1;
  Harness h;
  h.device = h.make(blk);
  if (!blk) h.net = static_cast<VirtioNet*>(h.device.get());

  for (int steps = 0; steps < 4096 && !in.empty(); ++steps) {
    uint8_t op = 0;
    in.take(op);
    bool was_failed = h.device->needs_reset();
    switch (op % 11) {
      case 0: {
        uint16_t offset;
        uint32_t value;
        if (!in.take(offset) || !in.take(value)) return 0;
        // Status writes of 0 are the only way out of the error state.
        if ((offset & 0x1ff) == reg::kStatus && value == 0) was_failed = false;
        uint8_t b[4];
        std::memcpy(b, &value, 4);
        h.device->mmio_write(offset & 0x1ff, b);
        break;
      }
      case 1: {
        uint16_t offset;
        uint8_t width;
        if (!in.take(offset) || !in.take(width)) return 0;
        uint8_t b[8];
        size_t n = size_t{1} << (width % 4);
        h.device->mmio_read(offset & 0x1ff, std::span(b, n));
        break;
      }
      case 2: {
        uint16_t gpa;
        uint8_t len;
        if (!in.take(gpa) || !in.take(len)) return 0;
        const uint8_t* bytes = in.take_bytes(len);
        if (!bytes) return 0;
        h.poke(gpa, bytes, len);
        break;
      }
      case 3: {
        uint8_t q;
        if (!in.take(q)) return 0;
        h.write32(reg::kQueueNotify, q % 3);
        break;
      }
      case 4: {
        uint16_t len;
        if (!in.take(len)) return 0;
        if (h.net) h.net->deliver_frame(std::vector<uint8_t>(len % 2048, 0x5a));
        break;
      }
      case 5: {
        uint8_t size_log2, mask;
        if (!in.take(size_log2) || !in.take(mask)) return 0;
        h.bring_up(size_log2, mask);
        was_failed = false;
        break;
      }
      case 6: {
        uint8_t q, index, flags, next;
        uint16_t addr, len;
        if (!in.take(q) || !in.take(index) || !in.take(addr) || !in.take(len) || !in.take(flags) ||
            !in.take(next))
          return 0;
        uint64_t at = Harness::desc_table(q % 2) + 16ull * index;
        uint64_t gpa = addr;
        uint32_t len32 = len;
        uint16_t flags16 = flags & 7, next16 = next;
        h.poke(at, &gpa, 8);
        h.poke(at + 8, &len32, 4);
        h.poke(at + 12, &flags16, 2);
        h.poke(at + 14, &next16, 2);
        break;
      }
      case 7: {
        uint8_t q;
        uint16_t head;
        if (!in.take(q) || !in.take(head)) return 0;
        q %= 2;
        uint16_t qsize = h.queue_size[q] ? h.queue_size[q] : 1;
        uint64_t avail = Harness::desc_table(q) + 0x1000;
        h.poke(avail + 4 + 2ull * (h.avail_idx[q] % qsize), &head, 2);
        ++h.avail_idx[q];
        h.poke(avail + 2, &h.avail_idx[q], 2);
        break;
      }
      case 8:
        h.snapshot_round_trip(blk);
        break;
      case 9: {
        uint8_t q;
        uint16_t idx;
        if (!in.take(q) || !in.take(idx)) return 0;
        q %= 2;
        h.avail_idx[q] = idx;
        h.poke(Harness::desc_table(q) + 0x1000 + 2, &idx, 2);
        break;
      }
      case 10:
        h.write32(reg::kStatus, 0);
        was_failed = false;
        break;
    }
    // The error state is sticky: only a reset clears it.
    if (was_failed && !h.device->needs_reset()) __builtin_trap();
  }
  h.snapshot_round_trip(blk);
  return 0;
}
