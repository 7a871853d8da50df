// Log format 2.6: the copied page form of memory deltas (a page as the bytes
// at a source address of the memory at the delta's base, plus a XOR
// residual), found through a PageCopyIndex of regions the guest copies from,
// applied only with that base memory, refused by writers of older formats.
#include <gtest/gtest.h>

#include <random>

#include "../../librr/src/log_format.h"
#include "librr/page_delta.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

constexpr size_t kPage = 4096;
constexpr uint64_t kPages = 16;
// Where the "initrd" lies in the fake memory, and where a file in it starts:
// 4-byte aligned, as cpio places file data.
constexpr uint64_t kRegionAddress = 4 * kPage;
constexpr uint64_t kRegionSize = 6 * kPage;
constexpr uint64_t kFileAddress = kRegionAddress + 100;

std::vector<uint8_t> random_bytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(size);
  for (auto& byte : bytes) byte = static_cast<uint8_t>(rng());
  return bytes;
}

// Guest memory at the base: random bytes in the region, zeros elsewhere.
struct Memory {
  std::vector<uint8_t> bytes = std::vector<uint8_t>(kPages * kPage, 0);
  PageCopyIndex index;
  Memory() {
    const auto region = random_bytes(kRegionSize, 1);
    std::copy(region.begin(), region.end(), bytes.begin() + kRegionAddress);
    index.add_region(kRegionAddress, {bytes.data() + kRegionAddress, kRegionSize});
  }
  std::vector<uint8_t> at(uint64_t address) const {
    return {bytes.begin() + static_cast<std::ptrdiff_t>(address),
            bytes.begin() + static_cast<std::ptrdiff_t>(address + kPage)};
  }
};

const std::vector<uint64_t> kListed = {12, 13};  // the pages the delta lists

PageDelta copied_delta(const Memory& memory, const std::vector<uint8_t>& shadow,
                       const std::vector<uint8_t>& current, uint64_t gfn = 12) {
  const PageCopySearch search{memory.index, {memory.bytes, kListed}};
  auto delta = make_page_delta(gfn, shadow, current, UnchangedPages::kKeep, &search);
  EXPECT_TRUE(delta);
  return delta.value_or(PageDelta{});
}

std::vector<uint8_t> replayed(const Memory& memory, const PageDelta& delta,
                              std::vector<uint8_t> page) {
  const BaseMemory base{memory.bytes, kListed};
  apply_page_delta(delta, page, &base);
  return page;
}

}  // namespace

// A page cache page filled from the initrd: logged as the file's address.
TEST(LogFormat26, PageFilledFromIndexedMemoryIsLoggedAsItsSource) {
  Memory memory;
  const std::vector<uint8_t> recycled = random_bytes(kPage, 2);  // the page's old content
  const std::vector<uint8_t> current = memory.at(kFileAddress + kPage);
  const PageDelta delta = copied_delta(memory, recycled, current);
  EXPECT_TRUE(is_copied_page(delta));
  EXPECT_LT(delta.compressed_xor.size(), 8u) << "marker and a varint address";
  EXPECT_EQ(replayed(memory, delta, recycled), current);
}

// A page changed after the copy, or a copy in progress (the tail still the
// old bytes), keeps a residual: sparse for a few bytes, else a zstd frame.
TEST(LogFormat26, PartlyCopiedPagesKeepAResidual) {
  Memory memory;
  const std::vector<uint8_t> old = random_bytes(kPage, 3);
  std::vector<uint8_t> edited = memory.at(kFileAddress);
  edited[10] ^= 0xff;
  edited[3000] ^= 0x01;
  const PageDelta few = copied_delta(memory, old, edited);
  ASSERT_TRUE(is_copied_page(few));
  EXPECT_LT(few.compressed_xor.size(), 24u);
  EXPECT_EQ(replayed(memory, few, old), edited);

  std::vector<uint8_t> partly = memory.at(kFileAddress + 2 * kPage);
  std::copy(old.begin() + 3 * kPage / 4, old.end(), partly.begin() + 3 * kPage / 4);
  const PageDelta in_progress = copied_delta(memory, old, partly);
  ASSERT_TRUE(is_copied_page(in_progress)) << "1 KiB of residual against 3 KiB of XOR";
  EXPECT_EQ(replayed(memory, in_progress, old), partly);
}

// Record never names a source over a page the delta lists (replay would read
// it after installing it, or before: either may be wrong), nor one outside
// memory; such a page keeps its other forms.
TEST(LogFormat26, SourcesOverListedPagesAreNotUsed) {
  Memory memory;
  const std::vector<uint8_t> current = memory.at(kFileAddress);
  const std::vector<uint64_t> listed_source = {4, 5, 12};
  const PageCopySearch search{memory.index, {memory.bytes, listed_source}};
  const auto delta =
      make_page_delta(12, std::vector<uint8_t>(kPage, 0), current, UnchangedPages::kKeep, &search);
  ASSERT_TRUE(delta);
  EXPECT_FALSE(is_copied_page(*delta));
  EXPECT_THROW(make_memory_delta(1, {}, UnchangedPages::kKeep, DeltaBase::shadow, &search), Error)
      << "copies are only for deltas based on the previous position";
}

TEST(LogFormat26, DamagedOrUnplaceableCopiesAreFormatErrors) {
  Memory memory;
  const std::vector<uint8_t> old = random_bytes(kPage, 4);
  std::vector<uint8_t> edited = memory.at(kFileAddress);
  edited[5] ^= 1;
  const PageDelta delta = copied_delta(memory, old, edited);
  ASSERT_TRUE(is_copied_page(delta));
  std::vector<uint8_t> page = old;
  EXPECT_THROW(apply_page_delta(delta, page), FormatError) << "no base memory";
  const std::vector<uint64_t> source_listed = {4};
  const BaseMemory over_listed{memory.bytes, source_listed};
  EXPECT_THROW(apply_page_delta(delta, page, &over_listed), FormatError);
  const BaseMemory small{std::span(memory.bytes).first(kFileAddress + 10), kListed};
  EXPECT_THROW(apply_page_delta(delta, page, &small), FormatError) << "source outside memory";
  const BaseMemory base{memory.bytes, kListed};
  EXPECT_THROW(apply_page_delta(PageDelta{12, {0x02}}, page, &base), FormatError) << "no address";
  EXPECT_THROW(apply_page_delta(PageDelta{12, {0x02, 0x80}}, page, &base), FormatError);
  // Marker, varint kFileAddress (16484), then a literal page's marker.
  const PageDelta nested{12, {0x02, 0xe4, 0x80, 0x01, 0x01}};
  EXPECT_THROW(apply_page_delta(nested, page, &base), FormatError) << "a literal residual";
  PageDelta truncated = delta;
  truncated.compressed_xor.pop_back();
  EXPECT_THROW(apply_page_delta(truncated, page, &base), FormatError);
}

// Regions of one repeated byte (a zero fill) are not indexed: they match anywhere.
TEST(LogFormat26, FillsAreNotIndexed) {
  const std::vector<uint8_t> zeros(4 * kPage, 0), fill(4 * kPage, 0xcc);
  PageCopyIndex index;
  index.add_region(0, zeros);
  index.add_region(4 * kPage, fill);
  EXPECT_TRUE(index.empty());
  EXPECT_TRUE(index.candidates(std::vector<uint8_t>(kPage, 0xcc)).empty());
}

std::vector<Event> copied_page_events(const Memory& memory) {
  const std::vector<uint8_t> old = random_bytes(kPage, 5);
  const std::vector<uint8_t> whole = memory.at(kFileAddress);
  std::vector<uint8_t> few = memory.at(kFileAddress + kPage);
  few[77] ^= 0x42;
  const PageChange changes[] = {{12, old, whole}, {13, old, few}};
  const PageCopySearch search{memory.index, {memory.bytes, kListed}};
  std::vector<Event> events;
  for (uint64_t t = 1; t <= 3; ++t) {
    events.push_back(InterruptDelivery{{t, 1, 0}, 0x20, 0});
    events.push_back(AsyncPosition{{t, 1, 0},
                                   1,
                                   std::vector<uint8_t>(48, static_cast<uint8_t>(t)),
                                   make_memory_delta(t, changes, UnchangedPages::kKeep,
                                                     DeltaBase::previous_position, &search)});
  }
  events.push_back(EndOfRecording{{4, 0, 0}, "done", 0});
  return events;
}

TEST(LogFormat26, CopiedPagesSurviveTheLogAndNeedFormat26) {
  TempDir dir;
  Memory memory;
  const std::vector<Event> events = copied_page_events(memory);
  const auto& delta = std::get<MemoryDelta>(std::get<AsyncPosition>(events[1]).memory);
  ASSERT_TRUE(is_copied_page(delta.pages[0]) && is_copied_page(delta.pages[1]));
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    const auto path = dir / (std::string(mode_name(mode)) + ".log");
    {
      LogWriter writer(path, writer_options(mode));
      for (const Event& event : events) writer.append(event);
      writer.close();
    }
    LogReader reader(path, reader_options(mode));
    EXPECT_GE(reader.info().version_minor, 6);
    EXPECT_EQ(read_all(reader), events);
  }
  auto old = writer_options(Mode::plain);
  old.format_version = 1;
  LogWriter writer(dir / "v1.log", old);
  try {
    writer.append(events[1]);
    ADD_FAILURE() << "a copied page was written into format 1.0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs log format 2.6"), std::string::npos) << e.what();
  }
}

// The reader's fuzz corpus holds a 2.6 log with copied pages (regenerated
// with RR_WRITE_FUZZ_SEEDS=1 --gtest_filter=LogFormat26.FuzzSeedHoldsCopiedPages).
TEST(LogFormat26, FuzzSeedHoldsCopiedPages) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/copied-pages-v2.6.log";
  Memory memory;
  expect_fuzz_seed(seed, copied_page_events(memory), 4096, 6);
}
