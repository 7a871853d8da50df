#pragma once
// virtio-blk (device id 2) over virtio-mmio: one request queue, requests
// IN, OUT, FLUSH and GET_ID served synchronously from a CowDisk (read-only
// base image + copy-on-write overlay), capacity in config space.
//
// Protocol errors in a request's layout (no header, no status byte, data in
// the wrong direction) put the device in the error state; semantic errors
// (sector range past the capacity, length not a multiple of 512, host I/O
// failure) complete the request with VIRTIO_BLK_S_IOERR and the guest goes on.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/cow_disk.h"
#include "devices/virtio_mmio.h"

namespace vmm::virtio {

class VirtioBlk final : public VirtioMmioDevice {
 public:
  static constexpr uint32_t kDeviceId = 2;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
  // Larger requests fail with IOERR instead of making the host allocate
  // whatever the guest asks for (Linux splits requests far below this).
  static constexpr uint64_t kMaxRequestBytes = 128ull << 20;

  // Request types and status values (VIRTIO 1.1, 5.2.6).
  static constexpr uint32_t kTypeIn = 0;
  static constexpr uint32_t kTypeOut = 1;
  static constexpr uint32_t kTypeFlush = 4;
  static constexpr uint32_t kTypeGetId = 8;
  static constexpr uint8_t kStatusOk = 0;
  static constexpr uint8_t kStatusIoErr = 1;
  static constexpr uint8_t kStatusUnsupported = 2;

  // `serial` is what GET_ID returns (truncated to 20 bytes).
  VirtioBlk(Wiring wiring, std::unique_ptr<block::CowDisk> disk, std::string serial = "rrkvm-blk0",
            std::string name = "virtio-blk");

  block::CowDisk& disk() { return *disk_; }
  const block::CowDisk& disk() const { return *disk_; }

 protected:
  std::span<const uint8_t> config_space() const override { return config_; }
  void process_queue(unsigned index) override;
  void save_device(librr::ByteWriter& out) const override;
  void load_device(librr::ByteReader& in) override;

 private:
  // Serves one request; returns the number of bytes written to the chain.
  uint32_t serve(const DescriptorChain& chain);
  // Whether [sector, sector + data_bytes) is a whole-sector range on the disk.
  bool range_ok(uint64_t sector, uint64_t data_bytes) const;
  uint8_t serve_in(const DescriptorChain& chain, uint64_t sector, uint64_t data_bytes,
                   uint32_t& written);
  uint8_t serve_out(const DescriptorChain& chain, uint64_t sector, uint64_t data_bytes);

  std::unique_ptr<block::CowDisk> disk_;
  std::array<uint8_t, kIdBytes> serial_{};
  // struct virtio_blk_config up to blk_size: capacity u64, size_max u32,
  // seg_max u32, geometry (u16, u8, u8), blk_size u32.
  std::array<uint8_t, 24> config_{};
  std::vector<uint8_t> io_buffer_;
};

}  // namespace vmm::virtio
