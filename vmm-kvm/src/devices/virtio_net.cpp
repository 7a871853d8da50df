#include "devices/virtio_net.h"

#include <fmt/format.h>

#include <cstring>

namespace vmm::virtio {
namespace {

constexpr uint64_t kFeatureMac = 1ull << 5;
constexpr uint64_t kFeatureStatus = 1ull << 16;
constexpr uint16_t kLinkUp = 1;

}  // namespace

VirtioNet::VirtioNet(Wiring wiring, Mac mac, std::unique_ptr<net::NetBackend> backend,
                     std::string name)
    : VirtioMmioDevice(std::move(name), kDeviceId,
                       kFeatureMac | kFeatureStatus | kFeatureIndirectDesc,
                       {kQueueSize, kQueueSize}, std::move(wiring)),
      mac_(mac),
      backend_(std::move(backend)) {
  std::memcpy(config_.data(), mac_.data(), mac_.size());
  config_[6] = kLinkUp & 0xff;
  config_[7] = kLinkUp >> 8;
}

void VirtioNet::deliver_frame(std::span<const uint8_t> frame) {
  // Like a NIC without a running driver, a device that is not live drops
  // what arrives.
  if (!operational() || !wants_frames() || frame.size() > net::kMaxFrameBytes) {
    ++stats_.rx_dropped;
    return;
  }
  pending_rx_.emplace_back(frame.begin(), frame.end());
  guarded(kRxQueue, [&] { flush_rx(); });
}

size_t VirtioNet::pump_backend(const std::function<void(std::span<const uint8_t>)>& observe) {
  size_t delivered = 0;
  while (backend_ && wants_frames()) {
    std::optional<std::vector<uint8_t>> frame = backend_->receive();
    if (!frame) break;
    if (observe) observe(*frame);
    deliver_frame(*frame);
    ++delivered;
  }
  return delivered;
}

void VirtioNet::process_queue(unsigned index) {
  if (index == kTxQueue) transmit();
  if (index == kRxQueue) flush_rx();  // new receive buffers: drain pending frames
}

void VirtioNet::flush_rx() {
  if (!operational()) return;
  Virtqueue& rx = queue_mut(kRxQueue);
  bool used = false;
  DescriptorChain chain;
  while (!pending_rx_.empty() && rx.pop(memory(), chain)) {
    if (!chain.readable.empty())
      throw VirtqueueViolation(chain.head, "device-readable buffer in the receive queue");
    const std::vector<uint8_t>& frame = pending_rx_.front();
    uint32_t written = 0;
    if (chain.writable_bytes >= kHeaderBytes + frame.size()) {
      // Header: no checksum/GSO information, num_buffers = 1.
      std::array<uint8_t, kHeaderBytes> header{};
      header[10] = 1;
      if (!chain.write(memory(), 0, header) || !chain.write(memory(), kHeaderBytes, frame))
        throw VirtqueueViolation(chain.head, "receive buffer became unwritable");
      written = static_cast<uint32_t>(kHeaderBytes + frame.size());
      ++stats_.rx_frames;
    } else {
      // Without MRG_RXBUF each buffer must hold a whole frame; a too-small
      // one is returned empty (the driver drops it) and so is the frame.
      ++stats_.rx_dropped;
    }
    pending_rx_.pop_front();
    rx.push_used(memory(), chain.head, written);
    used = true;
  }
  if (used) signal_used(kRxQueue);
}

void VirtioNet::transmit() {
  Virtqueue& tx = queue_mut(kTxQueue);
  bool used = false;
  DescriptorChain chain;
  while (tx.pop(memory(), chain)) {
    if (!chain.writable.empty())
      throw VirtqueueViolation(chain.head, "device-writable buffer in the transmit queue");
    if (chain.readable_bytes < kHeaderBytes)
      throw VirtqueueViolation(
          chain.head, fmt::format("transmit chain of {} bytes is shorter than the {}-byte header",
                                  chain.readable_bytes, kHeaderBytes));
    uint64_t frame_bytes = chain.readable_bytes - kHeaderBytes;
    if (frame_bytes > net::kMaxFrameBytes)
      throw VirtqueueViolation(chain.head,
                               fmt::format("transmit frame of {} bytes exceeds {} (no GSO offered)",
                                           frame_bytes, net::kMaxFrameBytes));
    tx_buffer_.resize(frame_bytes);
    if (!chain.read(memory(), kHeaderBytes, tx_buffer_))
      throw VirtqueueViolation(chain.head, "transmit buffer became unreadable");
    // Numbered in transmit order whether or not the backend takes it: replay
    // (null backend) must number the frames exactly as the recording did.
    if (cooperation_) cooperation_->on_transmit(tx_buffer_);
    if (backend_ && backend_->send(tx_buffer_))
      ++stats_.tx_frames;
    else
      ++stats_.tx_dropped;
    tx.push_used(memory(), chain.head, 0);
    used = true;
  }
  if (used) signal_used(kTxQueue);
}

void VirtioNet::reset_device() {
  // Frames waiting for a receive buffer belong to the old driver instance.
  pending_rx_.clear();
}

void VirtioNet::save_device(librr::ByteWriter& out) const {
  out.raw(mac_.data(), mac_.size());
  out.u32(static_cast<uint32_t>(pending_rx_.size()));
  for (const std::vector<uint8_t>& frame : pending_rx_) out.bytes(frame);
}

void VirtioNet::load_device(librr::ByteReader& in) {
  Mac saved;
  in.raw_into(saved.data(), saved.size());
  if (saved != mac_)
    throw librr::FormatError(std::string(name()) + " snapshot: MAC address differs",
                             static_cast<int64_t>(in.position()));
  uint32_t count = in.u32();
  if (count > kMaxPendingFrames)
    throw librr::FormatError(
        fmt::format("{} snapshot: {} pending frames (max {})", name(), count, kMaxPendingFrames),
        static_cast<int64_t>(in.position()));
  std::deque<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < count; ++i) {
    frames.push_back(in.bytes_vec());
    if (frames.back().size() > net::kMaxFrameBytes)
      throw librr::FormatError(fmt::format("{} snapshot: oversized pending frame", name()),
                               static_cast<int64_t>(in.position()));
  }
  pending_rx_ = std::move(frames);
}

}  // namespace vmm::virtio
