#include "block/cow_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>

#include "librr/error.h"

namespace vmm::block {
namespace {

void pread_all(int fd, uint8_t* out, size_t len, uint64_t offset, const std::string& what) {
  while (len > 0) {
    ssize_t n = ::pread(fd, out, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      librr::throw_errno(fmt::format("{}: read at offset {}", what, offset));
    }
    if (n == 0)
      throw librr::SystemError(
          fmt::format("{}: unexpected end of file at offset {}", what, offset));
    out += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void pwrite_all(int fd, const uint8_t* in, size_t len, uint64_t offset, const std::string& what) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, in, len, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      librr::throw_errno(fmt::format("{}: write at offset {}", what, offset));
    }
    in += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

}  // namespace

CowDisk::CowDisk(const std::string& base_path, const std::string& overlay_path)
    : base_path_(base_path) {
  base_.reset(::open(base_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!base_) librr::throw_errno("disk image " + base_path + ": open read-only");
  struct stat st {};
  if (::fstat(base_.get(), &st) < 0) librr::throw_errno("disk image " + base_path + ": fstat");
  capacity_sectors_ = static_cast<uint64_t>(st.st_size) / kSectorBytes;

  if (overlay_path.empty()) {
    overlay_.reset(::memfd_create("rr-vmm-blk-overlay", MFD_CLOEXEC));
    overlay_description_ = "memory overlay of " + base_path;
    if (!overlay_) librr::throw_errno(overlay_description_ + ": memfd_create");
  } else {
    overlay_.reset(::open(overlay_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    overlay_description_ = "disk overlay " + overlay_path;
    overlay_is_file_ = true;
    if (!overlay_) librr::throw_errno(overlay_description_ + ": open");
  }
  // Sized like the disk but sparse: only written sectors take space.
  if (::ftruncate(overlay_.get(), static_cast<off_t>(capacity_sectors_ * kSectorBytes)) < 0)
    librr::throw_errno(overlay_description_ + ": ftruncate");
  written_.assign((capacity_sectors_ + 63) / 64, 0);
}

void CowDisk::check_range(uint64_t first_sector, size_t bytes, const char* what) const {
  if (bytes % kSectorBytes != 0 || first_sector > capacity_sectors_ ||
      bytes / kSectorBytes > capacity_sectors_ - first_sector)
    throw librr::Error(fmt::format("{}: {} of {} bytes at sector {} outside capacity {} sectors",
                                   base_path_, what, bytes, first_sector, capacity_sectors_));
}

bool CowDisk::sector_written(uint64_t sector) const {
  return sector < capacity_sectors_ && ((written_[sector / 64] >> (sector % 64)) & 1);
}

void CowDisk::set_written(uint64_t sector) { written_[sector / 64] |= 1ull << (sector % 64); }

uint64_t CowDisk::written_sector_count() const {
  uint64_t n = 0;
  for (uint64_t word : written_) n += static_cast<uint64_t>(std::popcount(word));
  return n;
}

template <class F>
void CowDisk::for_each_run(uint64_t first, uint64_t count, F&& f) const {
  uint64_t end = first + count;
  while (first < end) {
    bool written = sector_written(first);
    uint64_t run_end = first + 1;
    while (run_end < end && sector_written(run_end) == written) ++run_end;
    f(first, run_end - first, written);
    first = run_end;
  }
}

void CowDisk::read_sectors(uint64_t first_sector, std::span<uint8_t> out) const {
  check_range(first_sector, out.size(), "read");
  for_each_run(first_sector, out.size() / kSectorBytes,
               [&](uint64_t sector, uint64_t count, bool written) {
                 uint8_t* dst = out.data() + (sector - first_sector) * kSectorBytes;
                 if (written)
                   pread_all(overlay_.get(), dst, count * kSectorBytes, sector * kSectorBytes,
                             overlay_description_);
                 else
                   pread_all(base_.get(), dst, count * kSectorBytes, sector * kSectorBytes,
                             "disk image " + base_path_);
               });
}

void CowDisk::write_sectors(uint64_t first_sector, std::span<const uint8_t> in) {
  check_range(first_sector, in.size(), "write");
  pwrite_all(overlay_.get(), in.data(), in.size(), first_sector * kSectorBytes,
             overlay_description_);
  for (uint64_t s = 0; s < in.size() / kSectorBytes; ++s) set_written(first_sector + s);
}

void CowDisk::flush() {
  if (overlay_is_file_ && ::fdatasync(overlay_.get()) < 0)
    librr::throw_errno(overlay_description_ + ": fdatasync");
}

void CowDisk::save_map(librr::ByteWriter& out) const {
  out.u64(capacity_sectors_);
  out.u32(static_cast<uint32_t>(written_.size()));
  for (uint64_t word : written_) out.u64(word);
}

void CowDisk::load_map(librr::ByteReader& in) {
  int64_t at = static_cast<int64_t>(in.position());
  uint64_t capacity = in.u64();
  if (capacity != capacity_sectors_)
    throw librr::FormatError(fmt::format("{}: saved capacity {} sectors != image's {}", base_path_,
                                         capacity, capacity_sectors_),
                             at);
  uint32_t words = in.u32();
  if (words != written_.size())
    throw librr::FormatError(
        fmt::format("{}: saved map has {} words, expected {}", base_path_, words, written_.size()),
        at);
  std::vector<uint64_t> map(words);
  for (uint64_t& word : map) word = in.u64();
  // Bits past the capacity would claim sectors that do not exist.
  if (capacity_sectors_ % 64 != 0 && !map.empty() && (map.back() >> (capacity_sectors_ % 64)) != 0)
    throw librr::FormatError(base_path_ + ": saved map marks sectors past the capacity", at);
  written_ = std::move(map);
}

void CowDisk::save_overlay(librr::ByteWriter& out) const {
  save_map(out);
  std::vector<uint8_t> data;
  for_each_run(0, capacity_sectors_, [&](uint64_t sector, uint64_t count, bool written) {
    if (!written) return;
    data.resize(count * kSectorBytes);
    pread_all(overlay_.get(), data.data(), data.size(), sector * kSectorBytes,
              overlay_description_);
    out.raw(data.data(), data.size());
  });
}

void CowDisk::load_overlay(librr::ByteReader& in) {
  std::vector<uint64_t> previous = written_;
  load_map(in);
  // Check the blob holds every written sector before touching the overlay,
  // so that a truncated blob leaves the disk as it was.
  if (in.remaining() < written_sector_count() * kSectorBytes) {
    written_ = std::move(previous);
    throw librr::FormatError(base_path_ + ": overlay blob truncated",
                             static_cast<int64_t>(in.position()));
  }
  std::vector<uint64_t> map = written_;
  // Start from an empty overlay so that stale data cannot survive.
  if (::ftruncate(overlay_.get(), 0) < 0 ||
      ::ftruncate(overlay_.get(), static_cast<off_t>(capacity_sectors_ * kSectorBytes)) < 0)
    librr::throw_errno(overlay_description_ + ": ftruncate");
  for_each_run(0, capacity_sectors_, [&](uint64_t sector, uint64_t count, bool written) {
    if (!written) return;
    std::span<const uint8_t> data = in.raw(count * kSectorBytes);
    pwrite_all(overlay_.get(), data.data(), data.size(), sector * kSectorBytes,
               overlay_description_);
  });
  written_ = std::move(map);
}

}  // namespace vmm::block
