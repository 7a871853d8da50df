// virtio-blk over a real raw image file with a copy-on-write overlay, driven
// like a guest driver: reads see the base, writes land in the overlay, and
// the base image's bytes and mtime never change.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "devices/virtio_blk.h"
#include "librr/error.h"
#include "test_virtio_driver.h"

namespace vmm::virtio {
namespace {

namespace fs = std::filesystem;
using testing::kDescNext;
using testing::kDescWrite;
using testing::TestDriver;
using testing::TestGuest;

constexpr uint64_t kSectors = 128;  // 64 KiB image
constexpr uint64_t kHeaderGpa = 0x80000;
constexpr uint64_t kDataGpa = 0x81000;
constexpr uint64_t kStatusGpa = 0x90000;

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

timespec mtime_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mtim;
}

struct BlkFixture : ::testing::Test {
  void SetUp() override {
    dir = fs::path(::testing::TempDir()) / ("rr-blk-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    base = dir / "base.img";
    base_bytes.resize(kSectors * 512);
    for (size_t i = 0; i < base_bytes.size(); ++i)
      base_bytes[i] = static_cast<uint8_t>(i / 512 + i);
    std::ofstream(base, std::ios::binary)
        .write(reinterpret_cast<const char*>(base_bytes.data()),
               static_cast<std::streamsize>(base_bytes.size()));
    // Make the base read-only on disk too, and push its mtime into the past
    // so that any write would visibly change it.
    timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, base.c_str(), old, 0), 0);
    fs::permissions(base, fs::perms::owner_read | fs::perms::group_read);
    base_mtime = mtime_of(base);
    make_device("");
  }
  void TearDown() override { fs::remove_all(dir); }

  void make_device(const std::string& overlay) {
    blk = std::make_unique<VirtioBlk>(guest.wiring(),
                                      std::make_unique<block::CowDisk>(base.string(), overlay));
    driver = std::make_unique<TestDriver>(*blk, guest);
    driver->bring_up(16);
  }

  // Issues one request (header, optional data buffer, status) and returns
  // the status byte; `data_len` bytes at kDataGpa, device-writable for IN.
  uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    guest.put_obj<uint32_t>(kHeaderGpa, type);
    guest.put_obj<uint32_t>(kHeaderGpa + 4, 0);
    guest.put_obj<uint64_t>(kHeaderGpa + 8, sector);
    guest.put_obj<uint8_t>(kStatusGpa, 0xee);
    uint16_t head = static_cast<uint16_t>((driver->rings(0).avail_idx * 3) % 14);
    uint16_t d1 = static_cast<uint16_t>(head + 1), d2 = static_cast<uint16_t>(head + 2);
    if (data_len) {
      driver->desc(0, head, kHeaderGpa, 16, kDescNext, d1);
      driver->desc(0, d1, kDataGpa, data_len,
                   static_cast<uint16_t>(kDescNext | (data_writable ? kDescWrite : 0)), d2);
      driver->desc(0, d2, kStatusGpa, 1, kDescWrite);
    } else {
      driver->desc(0, head, kHeaderGpa, 16, kDescNext, d1);
      driver->desc(0, d1, kStatusGpa, 1, kDescWrite);
    }
    driver->make_available(0, head);
    driver->notify(0);
    auto used = driver->next_used(0);
    EXPECT_EQ(used.id, head);
    last_used_len = used.len;
    return guest.get_obj<uint8_t>(kStatusGpa);
  }
  std::vector<uint8_t> base_sectors(uint64_t first, uint64_t count) const {
    return {base_bytes.begin() + static_cast<long>(first * 512),
            base_bytes.begin() + static_cast<long>((first + count) * 512)};
  }

  fs::path dir, base;
  std::vector<uint8_t> base_bytes;
  timespec base_mtime{};
  TestGuest guest;
  std::unique_ptr<VirtioBlk> blk;
  std::unique_ptr<TestDriver> driver;
  uint32_t last_used_len = 0;
};

TEST_F(BlkFixture, CapacityInConfigSpace) {
  EXPECT_EQ(driver->read32(reg::kDeviceId), VirtioBlk::kDeviceId);
  uint64_t capacity =
      driver->read32(reg::kConfig) | (uint64_t{driver->read32(reg::kConfig + 4)} << 32);
  EXPECT_EQ(capacity, kSectors);
  EXPECT_TRUE(driver->device_features() & (1ull << 9)) << "VIRTIO_BLK_F_FLUSH";
}

TEST_F(BlkFixture, ReadComesFromBase) {
  EXPECT_EQ(request(VirtioBlk::kTypeIn, 3, 1024, true), VirtioBlk::kStatusOk);
  EXPECT_EQ(last_used_len, 1025u);
  EXPECT_EQ(guest.get(kDataGpa, 1024), base_sectors(3, 2));
}

TEST_F(BlkFixture, WriteGoesToOverlayAndBaseIsUntouched) {
  std::vector<uint8_t> data(1024, 0xab);
  guest.put(kDataGpa, data.data(), data.size());
  EXPECT_EQ(request(VirtioBlk::kTypeOut, 10, 1024, false), VirtioBlk::kStatusOk);
  EXPECT_EQ(last_used_len, 1u);
  EXPECT_TRUE(blk->disk().sector_written(10));
  EXPECT_TRUE(blk->disk().sector_written(11));
  EXPECT_FALSE(blk->disk().sector_written(12));

  // Read 9..12: base, overlay, overlay, base.
  std::memset(guest.ram.data() + kDataGpa, 0, 2048);
  EXPECT_EQ(request(VirtioBlk::kTypeIn, 9, 2048, true), VirtioBlk::kStatusOk);
  std::vector<uint8_t> expected = base_sectors(9, 1);
  expected.insert(expected.end(), data.begin(), data.end());
  auto tail = base_sectors(12, 1);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(guest.get(kDataGpa, 2048), expected);

  EXPECT_EQ(request(VirtioBlk::kTypeFlush, 0, 0, false), VirtioBlk::kStatusOk);
  EXPECT_EQ(read_file(base), base_bytes);
  timespec now = mtime_of(base);
  EXPECT_EQ(now.tv_sec, base_mtime.tv_sec);
  EXPECT_EQ(now.tv_nsec, base_mtime.tv_nsec);
}

TEST_F(BlkFixture, FileOverlayIsSparseAndHoldsWrites) {
  fs::path overlay = dir / "overlay.img";
  make_device(overlay.string());
  std::vector<uint8_t> data(512, 0x5a);
  guest.put(kDataGpa, data.data(), data.size());
  EXPECT_EQ(request(VirtioBlk::kTypeOut, 100, 512, false), VirtioBlk::kStatusOk);
  EXPECT_EQ(request(VirtioBlk::kTypeFlush, 0, 0, false), VirtioBlk::kStatusOk);
  auto bytes = read_file(overlay);
  ASSERT_EQ(bytes.size(), kSectors * 512);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), bytes.begin() + 100 * 512));
  struct stat st {};
  ASSERT_EQ(::stat(overlay.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kSectors * 512) << "overlay not sparse";
  EXPECT_EQ(read_file(base), base_bytes);
}

TEST_F(BlkFixture, GetIdReturnsSerial) {
  EXPECT_EQ(request(VirtioBlk::kTypeGetId, 0, 20, true), VirtioBlk::kStatusOk);
  auto id = guest.get(kDataGpa, 20);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(id.data())), "rrkvm-blk0");
  EXPECT_EQ(last_used_len, 21u);
}

TEST_F(BlkFixture, BadRangesFailWithIoErrorNotCrash) {
  EXPECT_EQ(request(VirtioBlk::kTypeIn, kSectors - 1, 1024, true), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(VirtioBlk::kTypeIn, kSectors, 512, true), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(VirtioBlk::kTypeIn, ~0ull, 512, true), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(VirtioBlk::kTypeOut, ~0ull - 0, 512, false), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(VirtioBlk::kTypeIn, 0, 100, true), VirtioBlk::kStatusIoErr)
      << "not whole sectors";
  EXPECT_EQ(request(99, 0, 0, false), VirtioBlk::kStatusUnsupported);
  EXPECT_FALSE(blk->needs_reset());
  EXPECT_EQ(blk->disk().written_sector_count(), 0u);
  // The last sector itself is fine.
  EXPECT_EQ(request(VirtioBlk::kTypeIn, kSectors - 1, 512, true), VirtioBlk::kStatusOk);
}

TEST_F(BlkFixture, MalformedRequestsEnterErrorState) {
  struct Case {
    const char* problem;
    std::function<void(TestDriver&)> build;
  };
  const Case cases[] = {
      {"header needs 16",
       [](TestDriver& d) {
         d.desc(0, 0, kHeaderGpa, 8, kDescNext, 1);
         d.desc(0, 1, kStatusGpa, 1, kDescWrite);
       }},
      {"no device-writable status byte", [](TestDriver& d) { d.desc(0, 0, kHeaderGpa, 16, 0); }},
      {"IN request carries device-readable data",
       [](TestDriver& d) {
         d.desc(0, 0, kHeaderGpa, 16, kDescNext, 1);
         d.desc(0, 1, kDataGpa, 512, kDescNext, 2);
         d.desc(0, 2, kStatusGpa, 1, kDescWrite);
       }},
  };
  for (const Case& c : cases) {
    guest.log_lines.clear();
    driver->bring_up(16);
    guest.put_obj<uint32_t>(kHeaderGpa, VirtioBlk::kTypeIn);
    c.build(*driver);
    driver->make_available(0, 0);
    driver->notify(0);
    EXPECT_TRUE(blk->needs_reset()) << c.problem;
    ASSERT_EQ(guest.log_lines.size(), 1u) << c.problem;
    EXPECT_NE(guest.log_lines[0].find("virtio-blk: queue 0: descriptor 0: "), std::string::npos)
        << guest.log_lines[0];
    EXPECT_NE(guest.log_lines[0].find(c.problem), std::string::npos) << guest.log_lines[0];
  }
  // OUT with a device-writable data buffer: nothing is written anywhere.
  guest.log_lines.clear();
  driver->bring_up(16);
  guest.put_obj<uint32_t>(kHeaderGpa, VirtioBlk::kTypeOut);
  guest.put_obj<uint8_t>(kStatusGpa, 0xee);
  driver->desc(0, 0, kHeaderGpa, 16, kDescNext, 1);
  driver->desc(0, 1, kDataGpa, 512, kDescNext | kDescWrite, 2);
  driver->desc(0, 2, kStatusGpa, 1, kDescWrite);
  driver->make_available(0, 0);
  driver->notify(0);
  EXPECT_TRUE(blk->needs_reset());
  EXPECT_EQ(guest.get_obj<uint8_t>(kStatusGpa), 0xee) << "status untouched";
  EXPECT_EQ(driver->used_idx(0), 0);
  EXPECT_EQ(blk->disk().written_sector_count(), 0u);
  EXPECT_EQ(read_file(base), base_bytes);
}

TEST_F(BlkFixture, SnapshotKeepsWrittenSectorMapAndOverlayBlob) {
  std::vector<uint8_t> data(512, 0x77);
  guest.put(kDataGpa, data.data(), data.size());
  ASSERT_EQ(request(VirtioBlk::kTypeOut, 5, 512, false), VirtioBlk::kStatusOk);
  ASSERT_EQ(request(VirtioBlk::kTypeOut, 64, 512, false), VirtioBlk::kStatusOk);
  librr::ByteWriter state, overlay;
  blk->save(state);
  blk->disk().save_overlay(overlay);

  TestGuest copy;
  copy.ram = guest.ram;
  VirtioBlk restored(copy.wiring(), std::make_unique<block::CowDisk>(base.string()));
  librr::ByteReader overlay_in(overlay.data());
  restored.disk().load_overlay(overlay_in);
  overlay_in.expect_end();
  librr::ByteReader state_in(state.data());
  restored.load(state_in);
  state_in.expect_end();
  EXPECT_EQ(restored.disk().written_sector_count(), 2u);
  EXPECT_EQ(restored.queue(0).last_avail_idx(), 2);

  std::vector<uint8_t> sector(512);
  restored.disk().read_sectors(64, sector);
  EXPECT_EQ(sector, data);
  restored.disk().read_sectors(6, sector);
  EXPECT_EQ(sector, base_sectors(6, 1));

  // A truncated overlay blob leaves the disk unchanged.
  std::vector<uint8_t> cut(overlay.data().begin(), overlay.data().end() - 1);
  VirtioBlk fresh(copy.wiring(), std::make_unique<block::CowDisk>(base.string()));
  librr::ByteReader cut_in(cut);
  EXPECT_THROW(fresh.disk().load_overlay(cut_in), librr::FormatError);
  EXPECT_EQ(fresh.disk().written_sector_count(), 0u);
}

TEST(CowDisk, RejectsMissingImageWithPath) {
  try {
    block::CowDisk disk("/nonexistent/rr-disk.img");
    FAIL() << "expected SystemError";
  } catch (const librr::SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/rr-disk.img"), std::string::npos);
  }
}

}  // namespace
}  // namespace vmm::virtio
