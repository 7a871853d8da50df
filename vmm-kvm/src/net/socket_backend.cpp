#include "net/socket_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "librr/error.h"

namespace vmm::net {

SocketBackend::SocketBackend(virtio::UniqueFd socket, std::string description)
    : socket_(std::move(socket)), description_(std::move(description)), buffer_(kMaxFrameBytes) {
  int flags = ::fcntl(socket_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK) < 0)
    librr::throw_errno("net backend " + description_ + ": making the socket non-blocking");
}

std::unique_ptr<SocketBackend> SocketBackend::connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    throw librr::Error("net backend unix:" + path + ": path empty or longer than " +
                       std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  int last_errno = 0;
  // A seqpacket server is the natural peer; fall back to datagrams so that a
  // simple SOCK_DGRAM server works too.
  for (int type : {SOCK_SEQPACKET, SOCK_DGRAM}) {
    virtio::UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd) librr::throw_errno("net backend unix:" + path + ": socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
      return std::make_unique<SocketBackend>(std::move(fd), "unix:" + path);
    last_errno = errno;
  }
  errno = last_errno;
  librr::throw_errno("net backend unix:" + path + ": connect");
}

bool SocketBackend::send(std::span<const uint8_t> frame) {
  for (;;) {
    ssize_t n = ::send(socket_.get(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n) == frame.size();
    if (errno == EINTR) continue;
    return false;  // EAGAIN/ENOBUFS/ECONNREFUSED...: the frame is dropped, as on a real wire
  }
}

std::optional<std::vector<uint8_t>> SocketBackend::receive() {
  for (;;) {
    ssize_t n = ::recv(socket_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      librr::throw_errno("net backend " + description_ + ": recv");
    }
    if (n == 0) return std::nullopt;  // seqpacket peer closed (or an empty datagram)
    // MSG_TRUNC reports the real length: an oversized message is dropped
    // whole rather than delivered cut short.
    if (static_cast<size_t>(n) > buffer_.size()) continue;
    return std::vector<uint8_t>(buffer_.begin(), buffer_.begin() + n);
  }
}

}  // namespace vmm::net
