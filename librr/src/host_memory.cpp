#include "librr/host_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "log_io.h"

namespace librr {
namespace {

// Whether [begin, end) is covered by consecutive private anonymous mappings
// (/proc/self/maps: inode 0 and a 'p' in the permissions).
bool private_anonymous(uintptr_t begin, uintptr_t end) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  uintptr_t covered = begin;
  while (covered < end && std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, device;
    uint64_t inode = 0;
    if (!(fields >> range >> perms >> offset >> device >> inode)) return false;
    const size_t dash = range.find('-');
    if (dash == std::string::npos || perms.size() < 4) return false;
    const uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t stop = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (stop <= covered) continue;
    if (start > covered) return false;  // a hole before the range is covered
    if (perms[3] != 'p' || inode != 0) return false;
    covered = stop;
  }
  return covered >= end;
}

}  // namespace

std::optional<std::vector<bool>> held_pages(const void* base, size_t size) {
  const auto begin = reinterpret_cast<uintptr_t>(base);
  if (begin % kHostPageSize != 0 || size % kHostPageSize != 0 || size == 0) return std::nullopt;
  try {
    if (!private_anonymous(begin, begin + size)) return std::nullopt;
  } catch (const std::exception&) {  // std::stoull on a malformed line
    return std::nullopt;
  }
  const logio::UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  const size_t pages = size / kHostPageSize;
  std::vector<uint64_t> entries(pages);
  const size_t bytes = pages * sizeof(uint64_t);
  const ssize_t got = ::pread(fd.get(), entries.data(), bytes,
                              static_cast<off_t>(begin / kHostPageSize * sizeof(uint64_t)));
  if (got != static_cast<ssize_t>(bytes)) return std::nullopt;
  constexpr uint64_t kPresent = uint64_t{1} << 63, kSwapped = uint64_t{1} << 62;
  std::vector<bool> held(pages);
  for (size_t i = 0; i < pages; ++i) held[i] = (entries[i] & (kPresent | kSwapped)) != 0;
  return held;
}

}  // namespace librr
