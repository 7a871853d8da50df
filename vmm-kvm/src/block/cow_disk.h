#pragma once
// A disk made of a read-only raw base image and a copy-on-write overlay.
//
// The base image is opened O_RDONLY and never written. Writes go to the
// overlay, a sparse file (a path given by the user, or an anonymous memfd by
// default) at the same offsets as in the disk, and set one bit per written
// 512-byte sector; reads take each sector from the overlay if its bit is set,
// else from the base. The bitmap is device state (saved in snapshots); the
// overlay contents are exported separately as a blob of written runs.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "devices/virtio_fd.h"
#include "librr/bytes.h"

namespace vmm::block {

inline constexpr uint64_t kSectorBytes = 512;

class CowDisk {
 public:
  // Opens `base_path` read-only. The capacity is the base size rounded down
  // to whole sectors (a trailing partial sector is not visible). An empty
  // `overlay_path` keeps the overlay in memory (memfd); otherwise the file
  // is created or truncated. Throws librr::SystemError.
  CowDisk(const std::string& base_path, const std::string& overlay_path = "");

  uint64_t capacity_sectors() const { return capacity_sectors_; }
  const std::string& base_path() const { return base_path_; }

  // Whole-sector I/O; `first_sector` + the span's sectors must lie within the
  // capacity and the span must be a multiple of kSectorBytes, else
  // librr::Error. Host I/O failures throw librr::SystemError.
  void read_sectors(uint64_t first_sector, std::span<uint8_t> out) const;
  void write_sectors(uint64_t first_sector, std::span<const uint8_t> in);
  // Makes overlay writes durable (a no-op for a memory overlay).
  void flush();

  bool sector_written(uint64_t sector) const;
  uint64_t written_sector_count() const;

  // The written-sector map (device state).
  void save_map(librr::ByteWriter& out) const;
  // Replaces the map; the overlay must already hold the data for it.
  void load_map(librr::ByteReader& in);

  // The overlay contents: every run of written sectors with its data.
  void save_overlay(librr::ByteWriter& out) const;
  // Replaces map and overlay contents with what save_overlay() wrote.
  void load_overlay(librr::ByteReader& in);

 private:
  void check_range(uint64_t first_sector, size_t bytes, const char* what) const;
  void set_written(uint64_t sector);
  // Calls f(first, count, written) for maximal runs of equal written-ness.
  template <class F>
  void for_each_run(uint64_t first, uint64_t count, F&& f) const;

  std::string base_path_;
  std::string overlay_description_;
  virtio::UniqueFd base_;
  virtio::UniqueFd overlay_;
  bool overlay_is_file_ = false;
  uint64_t capacity_sectors_ = 0;
  std::vector<uint64_t> written_;  // one bit per sector
};

}  // namespace vmm::block
