// Hostile and damaged snapshots: every single-byte change and every
// truncation of a small snapshot must be detected, and reading must fail with
// a librr::Error rather than crash or return wrong data.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "librr/snapshot.h"

namespace fs = std::filesystem;
using librr::SnapshotReader;
using librr::SnapshotWriter;

namespace {

struct Contents {
  std::vector<uint8_t> blob;
  std::vector<uint8_t> ram;
  bool operator==(const Contents&) const = default;
};

Contents make_contents() {
  Contents c;
  for (int i = 0; i < 40; ++i) c.blob.push_back(static_cast<uint8_t>(i * 3));
  c.ram.assign(6 * 4096 + 100, 0);
  for (size_t i = 0; i < 300; ++i) c.ram[4096 + i] = static_cast<uint8_t>(i);
  c.ram[3 * 4096 + 5] = 1;
  c.ram[4 * 4096 + 9] = 2;
  c.ram[6 * 4096 + 99] = 3;  // partial last page
  return c;
}

// Reads everything back; throws librr::Error on any detected problem.
Contents read_all(const fs::path& path, const std::optional<librr::Key>& key) {
  SnapshotReader reader = SnapshotReader::open(path, key);
  Contents c;
  c.blob = reader.read_blob("dev");
  c.ram.assign(reader.find("ram")->size, 0);
  reader.read_memory("ram", c.ram.data(), c.ram.size());
  return c;
}

void write_file(const fs::path& path, std::span<const uint8_t> bytes) {
  // A fresh inode each time: truncating in place makes ext4 flush to disk on close.
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
}

class SnapshotCorruptionTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "rrsnap-corrupt-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    if (GetParam()) key_ = librr::Key::generate();
    const fs::path original = dir_ / "original.rrsnap";
    SnapshotWriter writer(original, {.key = key_});
    contents_ = make_contents();
    writer.add_blob("dev", 1, contents_.blob);
    writer.add_memory("ram", 0, contents_.ram.data(), contents_.ram.size());
    writer.finish();
    std::ifstream in(original, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    ASSERT_EQ(read_all(original, key_), contents_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::optional<librr::Key> key_;
  Contents contents_;
  std::vector<uint8_t> bytes_;
};

}  // namespace

TEST_P(SnapshotCorruptionTest, EverySingleByteChangeIsDetected) {
  const fs::path damaged = dir_ / "damaged.rrsnap";
  // The BLAKE2b digest itself is the only field that the readers do not
  // check on every read (it costs a pass over the whole file); verify() does.
  const size_t digest_begin = bytes_.size() - 40, digest_end = bytes_.size() - 8;
  size_t read_failures = 0;
  for (size_t offset = 0; offset < bytes_.size(); ++offset) {
    auto copy = bytes_;
    copy[offset] ^= 0x5A;
    write_file(damaged, copy);
    auto report = SnapshotReader::verify_file(damaged, key_);
    EXPECT_FALSE(report.ok) << "byte " << offset << " changed but verify() passed";
    EXPECT_NE(report.problem, librr::SnapshotVerifyReport::Problem::kNone);
    EXPECT_FALSE(report.message.empty());
    try {
      Contents got = read_all(damaged, key_);
      EXPECT_TRUE(offset >= digest_begin && offset < digest_end)
          << "byte " << offset << " changed but reading succeeded";
      EXPECT_EQ(got, contents_) << "byte " << offset << " changed the data read";
    } catch (const librr::Error&) {
      ++read_failures;
    }
  }
  EXPECT_EQ(read_failures, bytes_.size() - 32);
}

TEST_P(SnapshotCorruptionTest, EveryTruncationIsDetected) {
  const fs::path damaged = dir_ / "short.rrsnap";
  for (size_t length = 0; length < bytes_.size(); ++length) {
    write_file(damaged, std::span(bytes_).first(length));
    auto report = SnapshotReader::verify_file(damaged, key_);
    EXPECT_FALSE(report.ok) << "truncated to " << length << " bytes but verify() passed";
    EXPECT_THROW(read_all(damaged, key_), librr::Error) << "truncated to " << length;
  }
}

TEST_P(SnapshotCorruptionTest, AppendedBytesAreDetected) {
  const fs::path damaged = dir_ / "long.rrsnap";
  auto copy = bytes_;
  copy.push_back(0);
  write_file(damaged, copy);
  EXPECT_FALSE(SnapshotReader::verify_file(damaged, key_).ok);
  EXPECT_THROW(read_all(damaged, key_), librr::FormatError);
}

TEST_P(SnapshotCorruptionTest, ReportNamesKindAndOffsetOfDamage) {
  // Damage inside the first section frame: a checksum error (or, encrypted,
  // also a checksum error since the stored ciphertext checksum is checked first).
  const fs::path damaged = dir_ / "damaged.rrsnap";
  auto copy = bytes_;
  copy[64 + 20] ^= 1;
  write_file(damaged, copy);
  auto report = SnapshotReader::verify_file(damaged, key_);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.problem, librr::SnapshotVerifyReport::Problem::kChecksum) << report.message;
  EXPECT_EQ(report.offset, 64);
  // A changed digest is reported as such.
  copy = bytes_;
  copy[bytes_.size() - 20] ^= 1;
  write_file(damaged, copy);
  report = SnapshotReader::verify_file(damaged, key_);
  EXPECT_EQ(report.problem, librr::SnapshotVerifyReport::Problem::kDigest) << report.message;
}

INSTANTIATE_TEST_SUITE_P(PlainAndEncrypted, SnapshotCorruptionTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "Encrypted" : "Plain";
                         });
