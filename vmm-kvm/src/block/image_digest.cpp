#include "block/image_digest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "devices/virtio_fd.h"
#include "librr/crypto.h"
#include "librr/error.h"

namespace vmm::block {

std::string image_digest_hex(const std::string& path) {
  virtio::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) librr::throw_errno("disk image " + path + ": open");
  librr::Hasher hasher;
  std::vector<uint8_t> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) librr::throw_errno("disk image " + path + ": read");
    if (n == 0) break;
    hasher.update({buffer.data(), static_cast<size_t>(n)});
  }
  return librr::to_hex(hasher.finish());
}

}  // namespace vmm::block
