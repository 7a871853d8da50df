#include "librr/log_index.h"

#include <algorithm>

#include "librr/bytes.h"
#include "librr/crypto.h"
#include "librr/error.h"
#include "log_io.h"

namespace librr {
namespace {

constexpr std::array<uint8_t, 8> kIndexMagic = {'R', 'R', 'L', 'O', 'G', 'I', 'D', 'X'};
constexpr uint32_t kIndexVersion = 1;
constexpr size_t kIndexHeaderSize = 8 + 4 + 4 + 32 + 8 + 8;
constexpr size_t kIndexEntrySize = 8 + 8 + 4 + 24;
// An index for a log of millions of chunks is still far below this.
constexpr uint64_t kMaxIndexFileSize = uint64_t{1} << 32;

}  // namespace

std::filesystem::path index_path_for(const std::filesystem::path& log_path) {
  auto p = log_path;
  p += ".idx";
  return p;
}

void write_log_index(const std::filesystem::path& path, const LogIndex& index) {
  ByteWriter w;
  w.pod(kIndexMagic);
  w.u32(kIndexVersion);
  w.u32(0);
  w.pod(index.file_header_hash);
  w.u64(index.log_size);
  w.u64(index.chunks.size());
  for (const auto& c : index.chunks) {
    w.u64(c.offset);
    w.u64(c.first_record_index);
    w.u32(c.record_count);
    w.u64(c.first.landmark);
    w.u64(c.first.async_seq);
    w.u64(c.first.steps);
  }
  w.u64(checksum64(w.data()));

  auto tmp = path;
  tmp += ".tmp";
  {
    auto fd = logio::open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    logio::write_all(fd.get(), w.data(), tmp);
    fd.close_checked(tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw SystemError("cannot rename " + tmp.string() + " to " + path.string() + ": " +
                      ec.message());
  }
}

std::optional<LogIndex> read_log_index(const std::filesystem::path& path) {
  int raw_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw_fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("cannot open index " + path.string());
  }
  logio::UniqueFd fd(raw_fd);
  uint64_t size = logio::file_size(fd.get(), path);
  if (size < kIndexHeaderSize + 8 || size > kMaxIndexFileSize)
    throw FormatError("index " + path.string() + ": size " + std::to_string(size) +
                      " is out of range");
  auto bytes = logio::pread_upto(fd.get(), 0, size, path);
  if (bytes.size() != size) throw FormatError("index " + path.string() + ": short read");
  std::span<const uint8_t> all(bytes);
  if (ByteReader(all.last(8)).u64() != checksum64(all.first(all.size() - 8)))
    throw FormatError("index " + path.string() + ": checksum mismatch");
  ByteReader r(all.first(all.size() - 8), "log index");
  if (r.pod<std::array<uint8_t, 8>>() != kIndexMagic)
    throw FormatError("index " + path.string() + ": bad magic", 0);
  if (uint32_t v = r.u32(); v != kIndexVersion)
    throw FormatError("index " + path.string() + ": unsupported version " + std::to_string(v), 8);
  r.u32();
  LogIndex index;
  index.file_header_hash = r.pod<std::array<uint8_t, 32>>();
  index.log_size = r.u64();
  uint64_t count = r.u64();
  if (count != r.remaining() / kIndexEntrySize || r.remaining() % kIndexEntrySize != 0)
    throw FormatError("index " + path.string() + ": entry count " + std::to_string(count) +
                      " does not match its size");
  index.chunks.resize(count);
  for (auto& c : index.chunks) {
    c.offset = r.u64();
    c.first_record_index = r.u64();
    c.record_count = r.u32();
    c.first.landmark = r.u64();
    c.first.async_seq = r.u64();
    c.first.steps = r.u64();
  }
  r.expect_end();
  return index;
}

}  // namespace librr
