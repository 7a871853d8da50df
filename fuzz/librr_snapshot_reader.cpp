// libFuzzer target: SnapshotReader on arbitrary bytes. Every entry point a
// replayer uses (open, list, read blobs and memory, verify) must either
// succeed or throw librr::Error, never crash, hang or over-allocate.
// Seeds in fuzz/seeds/librr_snapshot_reader/ are plain and encrypted
// snapshots written with the key below.
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/snapshot.h"

namespace {

const librr::Key& fuzz_key() {
  static const librr::Key key = [] {
    std::array<uint8_t, 32> bytes{};
    bytes.fill(0x11);
    return librr::Key::from_bytes(bytes);
  }();
  return key;
}

// The input as a file, without touching the disk.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) : fd_(memfd_create("snapshot", MFD_CLOEXEC)) {
    if (fd_ >= 0 && size > 0 && write(fd_, data, size) != static_cast<ssize_t>(size)) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~MemFile() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

// Random mutations almost never keep an XXH3 checksum valid, so on their
// own they would only exercise the checksum checks. A second pass recomputes
// the header and frame checksums of the mutated input so that the table,
// block and decompression parsers behind them see hostile data too.
std::vector<uint8_t> with_checksums_fixed(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() < 64) return bytes;
  uint64_t header_checksum = librr::checksum64(std::span(bytes).first(56));
  std::memcpy(&bytes[56], &header_checksum, 8);
  for (size_t offset = 64; offset + 16 <= bytes.size();) {
    uint32_t length = 0;
    std::memcpy(&length, &bytes[offset + 8], 4);
    if (length > bytes.size() - offset - 16) break;
    uint64_t checksum = librr::checksum64(std::span(bytes).subspan(offset + 8, 8 + length));
    std::memcpy(&bytes[offset], &checksum, 8);
    offset += 16 + length;
  }
  return bytes;
}

void exercise(const uint8_t* data, size_t size) {
  MemFile file(data, size);
  if (!file.ok()) return;
  try {
    auto reader = librr::SnapshotReader::open(file.path(), fuzz_key());
    for (const auto& section : reader.sections()) {
      try {
        if (section.kind == librr::SectionKind::kBlob) {
          reader.read_blob(section.name);
        } else {
          uint64_t sum = 0;
          reader.read_memory(section.name, [&](uint64_t offset, std::span<const uint8_t> run) {
            sum += offset + run.size();
          });
          if (section.size <= (16u << 20)) {
            std::vector<uint8_t> buffer(section.size);
            reader.read_memory(section.name, buffer.data(), buffer.size());
          }
        }
      } catch (const librr::Error&) {
      }
    }
    (void)reader.verify();
  } catch (const librr::Error&) {
  }
  (void)librr::SnapshotReader::verify_file(file.path());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  exercise(data, size);
  auto fixed = with_checksums_fixed(data, size);
  exercise(fixed.data(), fixed.size());
  return 0;
}
