#include "gdb/gdb_listener.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

#include "librr/error.h"

namespace analyzer::gdb {

GdbListener::GdbListener(uint16_t port) {
  socket_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket_) librr::throw_errno("gdbserver: socket");
  const int on = 1;
  ::setsockopt(socket_.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    librr::throw_errno(fmt::format("gdbserver: bind 127.0.0.1:{}", port));
  if (::listen(socket_.get(), 1) != 0) librr::throw_errno("gdbserver: listen");
  socklen_t length = sizeof address;
  if (::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    librr::throw_errno("gdbserver: getsockname");
  port_ = ntohs(address.sin_port);
}

std::optional<UniqueFd> GdbListener::accept_one(const std::function<bool()>& should_stop,
                                                int interrupt_fd) {
  for (;;) {
    if (!wait_readable(socket_.get(), interrupt_fd)) return std::nullopt;
    UniqueFd connection(::accept4(socket_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (connection) {
      // Packets are small and strictly request/reply: send each at once.
      const int on = 1;
      ::setsockopt(connection.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      socket_.reset();
      return connection;
    }
    if (errno == EINTR) {
      if (should_stop && should_stop()) return std::nullopt;
      continue;
    }
    if (errno == ECONNABORTED) continue;
    librr::throw_errno(fmt::format("gdbserver: accept on 127.0.0.1:{}", port_));
  }
}

}  // namespace analyzer::gdb
