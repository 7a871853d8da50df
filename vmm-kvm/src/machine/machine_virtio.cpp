// The machine's virtio devices and its network input (docs/virtio.md,
// "Wiring into the machine"): building virtio-net and virtio-blk from the
// configuration, and pumping received frames at the session's pump points.
#include <fmt/format.h>

#include <cstdio>

#include "librr/error.h"
#include "machine/machine.h"
#include "net/net_backend.h"

namespace vmm {

void Machine::add_virtio_devices(const MachineConfig& config) {
  if (!config.net_backend.empty()) {
    net_ =
        std::make_unique<virtio::VirtioNet>(virtio::Wiring{memory(), &pic_, kVirtioNetIrq, {}},
                                            kGuestMac, net::make_net_backend(config.net_backend));
    mmio_bus_.add(kVirtioNetBase, virtio::kMmioWindowSize, *net_);
    if (const int fd = net_->backend()->poll_fd(); fd >= 0)
      net_watcher_ = std::make_unique<FdReadyWatcher>(fd, [this] { kicker_.kick(); });
  }
  if (!config.disk_image.empty()) {
    blk_ = std::make_unique<virtio::VirtioBlk>(
        virtio::Wiring{memory(), &pic_, kVirtioBlkIrq, {}},
        std::make_unique<block::CowDisk>(config.disk_image, config.disk_overlay));
    mmio_bus_.add(kVirtioBlkBase, virtio::kMmioWindowSize, *blk_);
  }
}

std::string Machine::virtio_cmdline() const {
  std::string entries;
  if (net_)
    entries += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", kVirtioNetBase, kVirtioNetIrq);
  if (blk_)
    entries += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", kVirtioBlkBase, kVirtioBlkIrq);
  return entries;
}

bool Machine::net_input_ready() const {
  return net_watcher_ && net_watcher_->ready() && net_->wants_frames();
}

size_t Machine::pump_net(const FrameObserver& observe) {
  if (!net_input_ready()) return 0;
  size_t taken = 0;
  bool observing = false;
  try {
    net_->pump_backend([&](std::span<const uint8_t> frame) {
      ++taken;
      observing = true;
      if (observe) observe(frame);
      observing = false;
    });
  } catch (const librr::SystemError& e) {
    if (observing) throw;  // the recorder failed, not the network
    // A broken backend (ECONNRESET...) ends the guest's input, not the machine.
    stop_net_input(e.what());
    return taken;
  }
  // Still full: more frames may wait in the backend; retry at the next stop
  // (after the guest posted buffers) without waking the watcher.
  if (!net_->wants_frames()) return taken;
  if (taken == 0 && net_watcher_->hung_up()) {
    stop_net_input("network backend " + net_->backend()->describe() + ": peer closed");
    return 0;
  }
  net_watcher_->rearm();
  return taken;
}

void Machine::stop_net_input(const std::string& why) {
  net_watcher_->retire();
  net_peer_gone_ = true;
  std::fprintf(stderr, "rr-vmm: %s; the guest receives no more frames\n", why.c_str());
}

}  // namespace vmm
