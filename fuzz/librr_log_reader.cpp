// libFuzzer: the input is a log file's bytes. The reader must verify,
// iterate and seek through anything without crashing or over-allocating, and
// every page delta of the records it returns must apply to a page (or be
// refused with FormatError) as replay applies it: against a small guest
// memory for the copied form's source.
// Each input is read twice: without a key and with a fixed key (so MAC'd and
// encrypted seed logs written with that key reach the decryption paths).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "librr/log.h"
#include "librr/page_delta.h"

namespace {

librr::Key fixed_key() {
  std::array<uint8_t, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(31 + i);  // test_key(1)
  return librr::Key::from_bytes(bytes);
}

void apply_deltas(const librr::Event& event) {
  const auto* async = std::get_if<librr::AsyncPosition>(&event);
  const auto* delta = async ? std::get_if<librr::MemoryDelta>(&async->memory) : nullptr;
  if (!delta) return;
  static const std::vector<uint8_t> memory = [] {
    std::vector<uint8_t> bytes(16 * 4096);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + (i >> 12));
    return bytes;
  }();
  const std::vector<uint64_t> listed = librr::listed_gfns(*delta);
  const librr::BaseMemory base{memory, listed};
  std::vector<uint8_t> page(4096);
  for (const librr::PageDelta& page_delta : delta->pages) {
    try {
      librr::apply_page_delta(page_delta, page, &base);
    } catch (const librr::FormatError&) {
    }
  }
}

void exercise(const std::string& path, std::optional<librr::Key> key) {
  librr::LogReaderOptions options;
  options.key = std::move(key);
  options.use_index = false;
  options.write_index = false;
  try {
    librr::LogReader reader(path, options);
    auto report = reader.verify();
    (void)report.to_string();
    uint64_t n = 0;
    while (auto event = reader.next()) {
      apply_deltas(*event);
      if (++n >= 100000) break;
    }
    if (n > 2) {
      reader.seek_to_record(n / 2);
      reader.next();
      reader.seek_to_position({n / 8, 1, 0});
      reader.next();
    }
  } catch (const librr::Error&) {
    // Clean rejection (bad header, key errors) is the expected outcome for most inputs.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // memfd: the reader works on paths and pread, and this avoids disk I/O.
  static int fd = memfd_create("librr-log-fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (ftruncate(fd, 0) != 0) return 0;
  if (pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  exercise(path, std::nullopt);
  exercise(path, fixed_key());
  return 0;
}
