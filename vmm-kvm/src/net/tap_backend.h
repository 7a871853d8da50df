#pragma once
// A NetBackend over a Linux TAP interface (/dev/net/tun with IFF_TAP |
// IFF_NO_PI): every read() is one Ethernet frame, every write() sends one.
#include <memory>
#include <string>

#include "devices/virtio_fd.h"
#include "net/net_backend.h"

namespace vmm::net {

class TapBackend final : public NetBackend {
 public:
  // Attaches to (creating if needed) the TAP interface `name`; an empty name
  // lets the kernel choose ("tapN"). Throws librr::SystemError.
  explicit TapBackend(const std::string& name);

  const std::string& interface_name() const { return name_; }
  bool send(std::span<const uint8_t> frame) override;
  std::optional<std::vector<uint8_t>> receive() override;
  int poll_fd() const override { return tap_.get(); }
  std::string describe() const override { return "tap:" + name_; }

 private:
  virtio::UniqueFd tap_;
  std::string name_;
  std::vector<uint8_t> buffer_;
};

}  // namespace vmm::net
