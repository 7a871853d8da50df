// Snapshot format: round trips of blobs and sparse memory, zero-page
// skipping, API misuse, and encryption with right, wrong and missing keys.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "librr/crypto.h"
#include "librr/snapshot.h"

namespace fs = std::filesystem;
using librr::SnapshotReader;
using librr::SnapshotWriter;

namespace {

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "rrsnap-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::vector<uint8_t> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Guest memory where about `fraction` of the pages hold data: some random,
// some nearly zero (one byte set at the very end, to catch a zero check that
// stops early), some in long runs that cross block boundaries.
std::vector<uint8_t> sparse_memory(std::mt19937_64& rng, size_t size, double fraction) {
  std::vector<uint8_t> mem(size, 0);
  std::bernoulli_distribution has_data(fraction);
  for (size_t page = 0; page * 4096 < size; ++page) {
    size_t start = page * 4096, n = std::min<size_t>(4096, size - start);
    if (!has_data(rng)) continue;
    switch (rng() % 3) {
      case 0:
        mem[start + n - 1] = 0x42;
        break;
      case 1:
        for (size_t i = 0; i < n; ++i) mem[start + i] = static_cast<uint8_t>(rng());
        break;
      default:
        std::fill_n(mem.begin() + static_cast<long>(start), n, static_cast<uint8_t>(page));
    }
  }
  // A run of 1.5 blocks of non-zero pages.
  size_t run_start = std::min<size_t>(size / 2, size - std::min<size_t>(size, 6 << 20));
  for (size_t i = run_start; i < std::min(size, run_start + (6 << 20)); ++i)
    mem[i] = static_cast<uint8_t>(i * 7 + 1);
  return mem;
}

size_t nonzero_pages(const std::vector<uint8_t>& mem) {
  size_t count = 0;
  for (size_t start = 0; start < mem.size(); start += 4096) {
    size_t n = std::min<size_t>(4096, mem.size() - start);
    if (std::any_of(mem.begin() + static_cast<long>(start),
                    mem.begin() + static_cast<long>(start + n), [](uint8_t b) { return b; }))
      ++count;
  }
  return count;
}

}  // namespace

TEST_F(SnapshotTest, RoundTripsBlobsAndSparseMemory) {
  std::mt19937_64 rng(1234);
  const auto small = random_bytes(rng, 300);
  const auto large = random_bytes(rng, (9 << 20) + 17);     // three chunks
  const size_t ram_size = 3 * (4 << 20) + 5 * 4096 + 1234;  // not a page or block multiple
  auto ram = sparse_memory(rng, ram_size, 0.3);
  ram[ram_size - 1] = 9;  // the partial last page holds data
  const auto low_ram = sparse_memory(rng, 640 * 1024, 0.05);

  const fs::path path = dir_ / "s.rrsnap";
  SnapshotWriter writer(path);
  writer.add_blob("vcpu0", 3, small);
  writer.add_blob("empty", 1, {});
  writer.add_blob("framebuffer", 7, large);
  writer.add_memory("ram-high", 0x100000000ull, ram.data(), ram.size());
  writer.add_memory("ram-low", 0, low_ram.data(), low_ram.size());
  const librr::Digest digest = writer.finish();

  SnapshotReader reader = SnapshotReader::open(path);
  EXPECT_FALSE(reader.encrypted());
  ASSERT_EQ(reader.sections().size(), 5u);
  EXPECT_EQ(reader.sections()[0].name, "vcpu0");
  EXPECT_EQ(reader.sections()[0].version, 3u);
  EXPECT_EQ(reader.sections()[2].size, large.size());
  const librr::SectionInfo* high = reader.find("ram-high");
  ASSERT_NE(high, nullptr);
  EXPECT_EQ(high->kind, librr::SectionKind::kMemory);
  EXPECT_EQ(high->guest_phys_base, 0x100000000ull);
  EXPECT_EQ(high->size, ram_size);
  EXPECT_EQ(high->nonzero_pages, nonzero_pages(ram));
  EXPECT_EQ(reader.find("nope"), nullptr);

  EXPECT_EQ(reader.read_blob("vcpu0"), small);
  EXPECT_TRUE(reader.read_blob("empty").empty());
  EXPECT_EQ(reader.read_blob("framebuffer"), large);

  // kFill: zero pages are cleared even in a dirty buffer.
  std::vector<uint8_t> out(ram_size, 0xAA);
  reader.read_memory("ram-high", out.data(), out.size());
  EXPECT_TRUE(out == ram);
  // kLeaveUntouched: stored pages are written, zero pages keep what was there.
  std::vector<uint8_t> untouched(low_ram.size(), 0xAA);
  reader.read_memory("ram-low", untouched.data(), untouched.size(),
                     SnapshotReader::ZeroPages::kLeaveUntouched);
  for (size_t page = 0; page < low_ram.size() / 4096; ++page) {
    auto begin = low_ram.begin() + static_cast<long>(page * 4096);
    bool zero = std::all_of(begin, begin + 4096, [](uint8_t b) { return b == 0; });
    EXPECT_EQ(untouched[page * 4096], zero ? 0xAA : low_ram[page * 4096]) << "page " << page;
  }
  // The callback sees ascending runs that cover exactly the non-zero pages.
  uint64_t last_end = 0, bytes = 0;
  reader.read_memory("ram-high", [&](uint64_t offset, std::span<const uint8_t> run) {
    EXPECT_GE(offset, last_end);
    EXPECT_EQ(offset % 4096, 0u);
    EXPECT_TRUE(std::equal(run.begin(), run.end(), ram.begin() + static_cast<long>(offset)));
    last_end = offset + run.size();
    bytes += run.size();
  });
  EXPECT_EQ(last_end, ram_size);
  EXPECT_EQ(bytes, (nonzero_pages(ram) - 1) * 4096 + ram_size % 4096);

  // The digest covers the file up to the digest field and is what verify computes.
  EXPECT_EQ(reader.stored_digest(), digest);
  auto all = file_bytes(path);
  EXPECT_EQ(librr::hash256(std::span(all).first(all.size() - 40)), digest);
  auto report = reader.verify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_TRUE(report.contents_checked);
  ASSERT_TRUE(report.computed_digest.has_value());
  EXPECT_EQ(*report.computed_digest, digest);
}

TEST_F(SnapshotTest, ZeroPagesAreNotStored) {
  // 256 MiB of untouched anonymous memory (reads as zero) plus three pages of data.
  const size_t size = size_t{256} << 20;
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* mem = static_cast<uint8_t*>(map);
  mem[0] = 1;
  std::fill_n(mem + 100 * 4096, 4096, 0x5A);
  mem[size - 1] = 2;
  const fs::path path = dir_ / "sparse.rrsnap";
  SnapshotWriter writer(path);
  writer.add_memory("ram", 0, mem, size);
  writer.finish();
  EXPECT_LT(fs::file_size(path), 4096u) << "zero pages must not take space";

  SnapshotReader reader = SnapshotReader::open(path);
  EXPECT_EQ(reader.find("ram")->nonzero_pages, 3u);
  std::vector<uint64_t> offsets;
  reader.read_memory("ram",
                     [&](uint64_t offset, std::span<const uint8_t>) { offsets.push_back(offset); });
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 100 * 4096, size - 4096}));
  munmap(map, size);
}

TEST_F(SnapshotTest, AllZeroRegionAndEmptySnapshot) {
  std::vector<uint8_t> zeros(5 * 4096 + 7, 0);
  const fs::path path = dir_ / "zero.rrsnap";
  SnapshotWriter writer(path);
  writer.add_memory("ram", 0x1000, zeros.data(), zeros.size());
  writer.finish();
  SnapshotReader reader = SnapshotReader::open(path);
  std::vector<uint8_t> out(zeros.size(), 0xFF);
  reader.read_memory("ram", out.data(), out.size());
  EXPECT_EQ(out, zeros);
  EXPECT_TRUE(reader.verify().ok);

  SnapshotWriter empty_writer(dir_ / "empty.rrsnap");
  empty_writer.finish();
  EXPECT_TRUE(SnapshotReader::open(dir_ / "empty.rrsnap").sections().empty());
}

TEST_F(SnapshotTest, RejectsMisuse) {
  const fs::path path = dir_ / "m.rrsnap";
  {
    SnapshotWriter writer(path);
    writer.add_blob("a", 1, std::vector<uint8_t>{1, 2, 3});
    EXPECT_THROW(writer.add_blob("a", 1, {}), librr::Error);
    EXPECT_THROW(writer.add_blob("", 1, {}), librr::Error);
    EXPECT_THROW(writer.add_blob(std::string(256, 'x'), 1, {}), librr::Error);
    writer.add_memory("ram", 0, nullptr, 0);
    writer.finish();
    EXPECT_THROW(writer.finish(), librr::Error);
  }
  // Never overwrite an existing snapshot.
  EXPECT_THROW(SnapshotWriter{path}, librr::SystemError);

  SnapshotReader reader = SnapshotReader::open(path);
  EXPECT_THROW(reader.read_blob("ram"), librr::Error);
  EXPECT_THROW(reader.read_memory("a", [](uint64_t, std::span<const uint8_t>) {}), librr::Error);
  EXPECT_THROW(reader.read_blob("missing"), librr::Error);
  // An empty region may be read into an empty (null) destination.
  EXPECT_NO_THROW(reader.read_memory("ram", nullptr, 0));
  std::vector<uint8_t> wrong(1);
  EXPECT_THROW(reader.read_memory("ram", wrong.data(), wrong.size()), librr::Error);
  EXPECT_THROW(SnapshotReader::open(dir_ / "does-not-exist"), librr::SystemError);
}

TEST_F(SnapshotTest, UnfinishedWriterLeavesNoFile) {
  const fs::path path = dir_ / "partial.rrsnap";
  {
    SnapshotWriter writer(path);
    writer.add_blob("a", 1, std::vector<uint8_t>(100, 1));
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SnapshotTest, EncryptedRoundTripHidesContents) {
  std::mt19937_64 rng(7);
  const std::string secret = "TOP-SECRET-DEVICE-STATE";
  std::vector<uint8_t> blob;
  for (int i = 0; i < 50; ++i) blob.insert(blob.end(), secret.begin(), secret.end());
  auto ram = sparse_memory(rng, (9 << 20) + 4096 * 3, 0.2);
  std::copy(secret.begin(), secret.end(), ram.begin() + 4096 * 7);

  const auto key = librr::Key::generate();
  key.save_file(dir_ / "key");
  const fs::path path = dir_ / "enc.rrsnap";
  SnapshotWriter writer(path, {.key = key});
  writer.add_blob("uart0-secret-name", 2, blob);
  writer.add_memory("ram", 0, ram.data(), ram.size());
  const auto digest = writer.finish();

  const auto bytes = file_bytes(path);
  auto contains = [&](std::string_view needle) {
    return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end()) != bytes.end();
  };
  EXPECT_FALSE(contains(secret)) << "plaintext state leaked into the encrypted file";
  EXPECT_FALSE(contains("uart0-secret-name")) << "section names must be encrypted too";

  SnapshotReader reader = SnapshotReader::open(path, librr::Key::load_file(dir_ / "key"));
  EXPECT_TRUE(reader.encrypted());
  EXPECT_EQ(reader.read_blob("uart0-secret-name"), blob);
  std::vector<uint8_t> out(ram.size());
  reader.read_memory("ram", out.data(), out.size());
  EXPECT_TRUE(out == ram);
  auto report = reader.verify();
  EXPECT_TRUE(report.ok) << report.message;
  EXPECT_TRUE(report.contents_checked);
  EXPECT_EQ(*report.computed_digest, digest);

  // Without a key: checksums and digest can still be verified.
  auto keyless = SnapshotReader::verify_file(path);
  EXPECT_TRUE(keyless.ok) << keyless.message;
  EXPECT_FALSE(keyless.contents_checked);
  EXPECT_EQ(*keyless.computed_digest, digest);
}

TEST_F(SnapshotTest, MissingOrWrongKeyGivesClearErrors) {
  const auto key = librr::Key::generate();
  const fs::path path = dir_ / "enc.rrsnap";
  SnapshotWriter writer(path, {.key = key});
  writer.add_blob("vcpu0", 1, std::vector<uint8_t>(64, 3));
  writer.finish();

  try {
    SnapshotReader::open(path);
    FAIL() << "opened an encrypted snapshot without a key";
  } catch (const librr::KeyError& e) {
    EXPECT_NE(std::string(e.what()).find("is encrypted"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(key.fingerprint()), std::string::npos) << e.what();
  }
  const auto other = librr::Key::generate();
  try {
    SnapshotReader::open(path, other);
    FAIL() << "opened an encrypted snapshot with the wrong key";
  } catch (const librr::KeyError& e) {
    EXPECT_NE(std::string(e.what()).find("wrong key"), std::string::npos) << e.what();
  }
  auto report = SnapshotReader::verify_file(path, other);
  EXPECT_FALSE(report.ok);
  EXPECT_EQ(report.problem, librr::SnapshotVerifyReport::Problem::kWrongKey);
}

TEST_F(SnapshotTest, ForgedKeyFingerprintStillFailsAuthentication) {
  // The fingerprint only makes the error message friendly; authentication
  // must not depend on it. Rewrite it (and the header checksum) to another key's.
  const auto key = librr::Key::generate();
  const auto other = librr::Key::generate();
  const fs::path path = dir_ / "enc.rrsnap";
  SnapshotWriter writer(path, {.key = key});
  writer.add_blob("vcpu0", 1, std::vector<uint8_t>(64, 3));
  writer.finish();
  auto bytes = file_bytes(path);
  const std::string fp = other.fingerprint();
  std::copy(fp.begin(), fp.end(), bytes.begin() + 24);
  uint64_t header_checksum = librr::checksum64(std::span(bytes).first(56));
  std::memcpy(bytes.data() + 56, &header_checksum, 8);
  fs::remove(path);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
  try {
    SnapshotReader::open(path, other);
    FAIL() << "decrypted with the wrong key";
  } catch (const librr::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("wrong key or corrupted"), std::string::npos) << e.what();
  }
}

TEST_F(SnapshotTest, WriteFailureMakesTheWriterRefuseToContinue) {
  // A file size limit makes write() fail with EFBIG half way through a section.
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::mt19937_64 rng(3);
  const auto big = random_bytes(rng, 1 << 20);  // incompressible: exceeds the limit
  const fs::path path = dir_ / "full.rrsnap";
  {
    SnapshotWriter writer(path);
    EXPECT_THROW(writer.add_blob("big", 1, big), librr::SystemError);
    try {
      writer.add_blob("small", 1, std::vector<uint8_t>{1});
      ADD_FAILURE() << "wrote a section after a failed one";
    } catch (const librr::Error& e) {
      EXPECT_NE(std::string(e.what()).find("earlier write failed"), std::string::npos) << e.what();
    }
    EXPECT_THROW(writer.finish(), librr::Error);
  }
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(fs::exists(path)) << "the unusable file must be removed";
}
