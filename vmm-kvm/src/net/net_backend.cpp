#include "net/net_backend.h"

#include <sys/socket.h>

#include <charconv>

#include "librr/error.h"
#include "net/socket_backend.h"
#include "net/tap_backend.h"

namespace vmm::net {
namespace {

class NullBackend final : public NetBackend {
 public:
  bool send(std::span<const uint8_t>) override { return true; }
  std::optional<std::vector<uint8_t>> receive() override { return std::nullopt; }
  int poll_fd() const override { return -1; }
  std::string describe() const override { return "none"; }
};

}  // namespace

std::unique_ptr<NetBackend> make_null_backend() { return std::make_unique<NullBackend>(); }

std::unique_ptr<NetBackend> make_net_backend(const std::string& spec) {
  if (spec == "none") return make_null_backend();
  if (spec.starts_with("tap:")) return std::make_unique<TapBackend>(spec.substr(4));
  if (spec.starts_with("unix:")) return SocketBackend::connect_unix(spec.substr(5));
  if (spec.starts_with("fd:")) {
    std::string_view digits = std::string_view(spec).substr(3);
    int fd = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
    if (ec != std::errc() || end != digits.data() + digits.size() || fd < 0)
      throw librr::Error("net backend " + spec + ": expected fd:<non-negative number>");
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
      librr::throw_errno("net backend " + spec + ": not a socket");
    if (type != SOCK_SEQPACKET && type != SOCK_DGRAM)
      throw librr::Error("net backend " + spec + ": socket must be SOCK_SEQPACKET or SOCK_DGRAM");
    return std::make_unique<SocketBackend>(virtio::UniqueFd(fd), spec);
  }
  throw librr::Error("net backend '" + spec + "': expected tap:NAME, unix:PATH, fd:N or none");
}

}  // namespace vmm::net
