#include "devices/virtio_blk.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "librr/error.h"

namespace vmm::virtio {
namespace {

constexpr uint64_t kFeatureSegMax = 1ull << 2;
constexpr uint64_t kFeatureFlush = 1ull << 9;
constexpr uint64_t kRequestHeaderBytes = 16;  // type u32, reserved u32, sector u64

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == kRequestHeaderBytes);

}  // namespace

VirtioBlk::VirtioBlk(Wiring wiring, std::unique_ptr<block::CowDisk> disk, std::string serial,
                     std::string name)
    : VirtioMmioDevice(std::move(name), kDeviceId,
                       kFeatureSegMax | kFeatureFlush | kFeatureIndirectDesc, {kQueueSize},
                       std::move(wiring)),
      disk_(std::move(disk)) {
  std::memcpy(serial_.data(), serial.data(), std::min(serial.size(), serial_.size()));
  uint64_t capacity = disk_->capacity_sectors();
  // Header and status take two descriptors of a chain.
  uint32_t seg_max = kQueueSize - 2;
  std::memcpy(config_.data(), &capacity, 8);
  std::memcpy(config_.data() + 12, &seg_max, 4);
}

void VirtioBlk::process_queue(unsigned index) {
  if (index != 0) return;
  Virtqueue& q = queue_mut(0);
  bool used = false;
  DescriptorChain chain;
  while (q.pop(memory(), chain)) {
    uint32_t written = serve(chain);
    q.push_used(memory(), chain.head, written);
    used = true;
  }
  if (used) signal_used(0);
}

uint32_t VirtioBlk::serve(const DescriptorChain& chain) {
  if (chain.readable_bytes < kRequestHeaderBytes)
    throw VirtqueueViolation(chain.head,
                             fmt::format("request has {} device-readable bytes, header needs {}",
                                         chain.readable_bytes, kRequestHeaderBytes));
  if (chain.writable_bytes == 0)
    throw VirtqueueViolation(chain.head, "request has no device-writable status byte");
  RequestHeader header;
  std::array<uint8_t, kRequestHeaderBytes> raw{};
  if (!chain.read(memory(), 0, raw)) throw VirtqueueViolation(chain.head, "header unreadable");
  std::memcpy(&header, raw.data(), sizeof header);

  // The status is the last byte the device may write; data sits before it.
  uint64_t readable_data = chain.readable_bytes - kRequestHeaderBytes;
  uint64_t writable_data = chain.writable_bytes - 1;
  uint32_t written = 0;
  uint8_t status = kStatusOk;
  switch (header.type) {
    case kTypeIn:
      if (readable_data != 0)
        throw VirtqueueViolation(chain.head, "IN request carries device-readable data");
      status = serve_in(chain, header.sector, writable_data, written);
      break;
    case kTypeOut:
      if (writable_data != 0)
        throw VirtqueueViolation(chain.head, "OUT request has device-writable data buffers");
      status = serve_out(chain, header.sector, readable_data);
      break;
    case kTypeFlush:
      try {
        disk_->flush();
      } catch (const librr::Error& e) {
        log(fmt::format("{}: flush failed: {}", name(), e.what()));
        status = kStatusIoErr;
      }
      break;
    case kTypeGetId: {
      // The id is NUL-padded; a shorter buffer gets a prefix (5.2.6.1).
      size_t n = static_cast<size_t>(std::min<uint64_t>(writable_data, kIdBytes));
      if (!chain.write(memory(), 0, std::span(serial_).first(n)))
        throw VirtqueueViolation(chain.head, "GET_ID buffer unwritable");
      written = static_cast<uint32_t>(n);
      break;
    }
    default:
      status = kStatusUnsupported;
      break;
  }
  if (!chain.write(memory(), chain.writable_bytes - 1, std::span(&status, 1)))
    throw VirtqueueViolation(chain.head, "status byte unwritable");
  return written + 1;
}

bool VirtioBlk::range_ok(uint64_t sector, uint64_t data_bytes) const {
  return data_bytes % block::kSectorBytes == 0 && data_bytes <= kMaxRequestBytes &&
         sector <= disk_->capacity_sectors() &&
         data_bytes / block::kSectorBytes <= disk_->capacity_sectors() - sector;
}

uint8_t VirtioBlk::serve_in(const DescriptorChain& chain, uint64_t sector, uint64_t data_bytes,
                            uint32_t& written) {
  if (!range_ok(sector, data_bytes)) return kStatusIoErr;
  io_buffer_.resize(data_bytes);
  try {
    disk_->read_sectors(sector, io_buffer_);
  } catch (const librr::Error& e) {
    log(fmt::format("{}: read failed: {}", name(), e.what()));
    return kStatusIoErr;
  }
  if (!chain.write(memory(), 0, io_buffer_))
    throw VirtqueueViolation(chain.head, "IN data buffer unwritable");
  written = static_cast<uint32_t>(data_bytes);
  return kStatusOk;
}

uint8_t VirtioBlk::serve_out(const DescriptorChain& chain, uint64_t sector, uint64_t data_bytes) {
  if (!range_ok(sector, data_bytes)) return kStatusIoErr;
  io_buffer_.resize(data_bytes);
  if (!chain.read(memory(), kRequestHeaderBytes, io_buffer_))
    throw VirtqueueViolation(chain.head, "OUT data buffer unreadable");
  try {
    disk_->write_sectors(sector, io_buffer_);
  } catch (const librr::Error& e) {
    log(fmt::format("{}: write failed: {}", name(), e.what()));
    return kStatusIoErr;
  }
  return kStatusOk;
}

void VirtioBlk::save_device(librr::ByteWriter& out) const { disk_->save_map(out); }

void VirtioBlk::load_device(librr::ByteReader& in) { disk_->load_map(in); }

}  // namespace vmm::virtio
