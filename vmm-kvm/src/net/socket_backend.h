#pragma once
// A NetBackend over a message-oriented socket (SOCK_SEQPACKET or SOCK_DGRAM,
// typically AF_UNIX): one Ethernet frame per message. Tests drive a virtual
// NIC through the other end of a socketpair; a userspace switch can do the
// same over a named unix socket.
#include <memory>
#include <string>

#include "devices/virtio_fd.h"
#include "net/net_backend.h"

namespace vmm::net {

class SocketBackend final : public NetBackend {
 public:
  // Takes ownership of a connected socket and makes it non-blocking.
  explicit SocketBackend(virtio::UniqueFd socket, std::string description);
  // Connects to the unix socket at `path` (SOCK_SEQPACKET, then SOCK_DGRAM).
  static std::unique_ptr<SocketBackend> connect_unix(const std::string& path);

  bool send(std::span<const uint8_t> frame) override;
  std::optional<std::vector<uint8_t>> receive() override;
  int poll_fd() const override { return socket_.get(); }
  std::string describe() const override { return description_; }

 private:
  virtio::UniqueFd socket_;
  std::string description_;
  std::vector<uint8_t> buffer_;
};

}  // namespace vmm::net
