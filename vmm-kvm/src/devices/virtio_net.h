#pragma once
// virtio-net (device id 1) over virtio-mmio: one receive and one transmit
// queue, MAC address and link status in config space, no offloads.
//
// Determinism: the device is a function of (its state, guest MMIO accesses,
// frames passed to deliver_frame()). It never reads the backend itself;
// transmitted frames go to the backend (nullable; replay uses the null
// backend) and do not influence guest-visible state.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "devices/virtio_mmio.h"
#include "net/cooperation.h"
#include "net/net_backend.h"

namespace vmm::virtio {

class VirtioNet final : public VirtioMmioDevice {
 public:
  static constexpr uint32_t kDeviceId = 1;
  static constexpr unsigned kRxQueue = 0;
  static constexpr unsigned kTxQueue = 1;
  static constexpr uint16_t kQueueSize = 256;
  // Received frames held while the guest has no receive buffer posted;
  // beyond this, wants_frames() turns false and further frames are dropped.
  static constexpr size_t kMaxPendingFrames = 64;
  // virtio_net_hdr_v1 (VIRTIO_F_VERSION_1 always includes num_buffers).
  static constexpr size_t kHeaderBytes = 12;

  using Mac = std::array<uint8_t, 6>;

  VirtioNet(Wiring wiring, Mac mac, std::unique_ptr<net::NetBackend> backend,
            std::string name = "virtio-net");

  // THE entry point of received frames: record logs each call, replay makes
  // the same calls from the log. The frame is queued and copied into the
  // guest's receive buffers as they become available.
  void deliver_frame(std::span<const uint8_t> frame);
  // False while kMaxPendingFrames frames are waiting for receive buffers: the
  // machine should leave further frames in the backend (backpressure).
  bool wants_frames() const { return pending_rx_.size() < kMaxPendingFrames; }
  // Convenience for the machine's poll loop: while wants_frames(), takes
  // frames from the backend, shows each to `observe` (the recorder logs it)
  // and delivers it. Returns the number of frames delivered.
  size_t pump_backend(const std::function<void(std::span<const uint8_t>)>& observe = {});

  net::NetBackend* backend() const { return backend_.get(); }
  // Cooperative logging (net/cooperation.h): sees every transmitted frame
  // before the backend does; the sessions ask it how to log, or where to find,
  // received frames. Host-side only: not guest-visible, not saved.
  void set_cooperation(std::shared_ptr<net::Cooperation> cooperation) {
    cooperation_ = std::move(cooperation);
  }
  net::Cooperation* cooperation() const { return cooperation_.get(); }
  const Mac& mac() const { return mac_; }

  struct Stats {
    uint64_t tx_frames = 0, tx_dropped = 0, rx_frames = 0, rx_dropped = 0;
  };
  // Host-side counters (not guest-visible, not saved).
  const Stats& stats() const { return stats_; }

 protected:
  std::span<const uint8_t> config_space() const override { return config_; }
  void process_queue(unsigned index) override;
  void driver_ready() override { flush_rx(); }
  void reset_device() override;
  void save_device(librr::ByteWriter& out) const override;
  void load_device(librr::ByteReader& in) override;

 private:
  void transmit();
  void flush_rx();

  Mac mac_;
  std::array<uint8_t, 8> config_{};  // struct virtio_net_config: mac[6], status u16
  std::unique_ptr<net::NetBackend> backend_;
  std::shared_ptr<net::Cooperation> cooperation_;
  std::deque<std::vector<uint8_t>> pending_rx_;
  std::vector<uint8_t> tx_buffer_;
  Stats stats_;
};

}  // namespace vmm::virtio
