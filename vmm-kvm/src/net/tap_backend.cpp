#include "net/tap_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "librr/error.h"

namespace vmm::net {

TapBackend::TapBackend(const std::string& name) : buffer_(kMaxFrameBytes) {
  if (name.size() >= IFNAMSIZ)
    throw librr::Error("net backend tap:" + name + ": interface name longer than " +
                       std::to_string(IFNAMSIZ - 1) + " bytes");
  tap_.reset(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!tap_) librr::throw_errno("net backend tap:" + name + ": open /dev/net/tun");
  ifreq request{};
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::memcpy(request.ifr_name, name.data(), name.size());
  if (::ioctl(tap_.get(), TUNSETIFF, &request) < 0)
    librr::throw_errno("net backend tap:" + name + ": TUNSETIFF");
  name_ = request.ifr_name;
}

bool TapBackend::send(std::span<const uint8_t> frame) {
  for (;;) {
    ssize_t n = ::write(tap_.get(), frame.data(), frame.size());
    if (n >= 0) return static_cast<size_t>(n) == frame.size();
    if (errno == EINTR) continue;
    return false;  // interface down or queue full: dropped like on a wire
  }
}

std::optional<std::vector<uint8_t>> TapBackend::receive() {
  for (;;) {
    ssize_t n = ::read(tap_.get(), buffer_.data(), buffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      librr::throw_errno("net backend tap:" + name_ + ": read");
    }
    if (n == 0) return std::nullopt;
    return std::vector<uint8_t>(buffer_.begin(), buffer_.begin() + n);
  }
}

}  // namespace vmm::net
