// Log format 2.6: the range forms of memory deltas. A copied range (bytes of
// the page are those at a source address of the memory at the delta's base),
// found through a PageCopyIndex of regions the guest copies from and applied
// only with that base memory; a filled range (a memset); each plus a XOR
// residual. Writers of older formats refuse them.
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

const std::vector<uint64_t> kListed = {12, 13, 14};  // the pages the delta lists

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

bool copied(const PageDelta& delta) { return page_form(delta) == PageForm::copied_range; }

}  // namespace

// A page cache page filled from the initrd: logged as the file's address.
TEST(LogFormat26, PageFilledFromIndexedMemoryIsLoggedAsItsSource) {
  Memory memory;
  const std::vector<uint8_t> recycled = random_bytes(kPage, 2);  // the page's old content
  const std::vector<uint8_t> current = memory.at(kFileAddress + kPage);
  const PageDelta delta = copied_delta(memory, recycled, current);
  EXPECT_TRUE(copied(delta));
  EXPECT_LT(delta.compressed_xor.size(), 10u) << "marker, address, offset and length";
  EXPECT_EQ(replayed(memory, delta, recycled), current);
}

// A page changed after the copy keeps a residual; a copy in progress (the
// tail still the old bytes) is a range as long as the part copied.
TEST(LogFormat26, PartlyCopiedPagesKeepAResidual) {
  Memory memory;
  const std::vector<uint8_t> old = random_bytes(kPage, 3);
  std::vector<uint8_t> edited = memory.at(kFileAddress);
  edited[10] ^= 0xff;
  edited[3000] ^= 0x01;
  const PageDelta few = copied_delta(memory, old, edited);
  ASSERT_TRUE(copied(few));
  EXPECT_LT(few.compressed_xor.size(), 24u);
  EXPECT_EQ(replayed(memory, few, old), edited);

  std::vector<uint8_t> partly = memory.at(kFileAddress + 2 * kPage);
  std::copy(old.begin() + 3 * kPage / 4, old.end(), partly.begin() + 3 * kPage / 4);
  const PageDelta in_progress = copied_delta(memory, old, partly);
  ASSERT_TRUE(copied(in_progress));
  EXPECT_LT(in_progress.compressed_xor.size(), 12u) << "the old tail is the base's: no residual";
  EXPECT_EQ(replayed(memory, in_progress, old), partly);

  std::vector<uint8_t> started = old;  // the first 200 bytes copied
  std::copy_n(memory.bytes.begin() + kFileAddress, 200, started.begin());
  const PageDelta just_started = copied_delta(memory, old, started);
  ASSERT_TRUE(copied(just_started));
  EXPECT_LT(just_started.compressed_xor.size(), 12u);
  EXPECT_EQ(replayed(memory, just_started, old), started);
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
  EXPECT_FALSE(copied(*delta));
  EXPECT_THROW(make_memory_delta(1, {}, UnchangedPages::kKeep, DeltaBase::shadow, &search), Error)
      << "copies are only for deltas based on the previous position";
}

TEST(LogFormat26, DamagedOrUnplaceableCopiesAreFormatErrors) {
  Memory memory;
  const std::vector<uint8_t> old = random_bytes(kPage, 4);
  std::vector<uint8_t> edited = memory.at(kFileAddress);
  edited[5] ^= 1;
  const PageDelta delta = copied_delta(memory, old, edited);
  ASSERT_TRUE(copied(delta));
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
  // Marker, varint kFileAddress (16484), offset 0, length 64 ...
  const std::vector<uint8_t> head = {0x02, 0xe4, 0x80, 0x01, 0x00, 0x40};
  PageDelta nested{12, head};
  nested.compressed_xor.push_back(0x01);  // ... and a literal page's marker as residual
  EXPECT_THROW(apply_page_delta(nested, page, &base), FormatError) << "a literal residual";
  EXPECT_NO_THROW(apply_page_delta(PageDelta{12, head}, page, &base));
  PageDelta past_end{12, {0x02, 0xe4, 0x80, 0x01, 0xc1, 0x1f, 0x40}};  // offset 4033, length 64
  EXPECT_THROW(apply_page_delta(past_end, page, &base), FormatError) << "range past the page";
  EXPECT_THROW(apply_page_delta(PageDelta{12, {0x02, 0xe4, 0x80, 0x01, 0x00, 0x00}}, page, &base),
               FormatError)
      << "empty range";
  PageDelta truncated = delta;
  truncated.compressed_xor.pop_back();
  EXPECT_THROW(apply_page_delta(truncated, page, &base), FormatError);
}

// A memset in progress (Linux poisoning a freed page with 0xcc) is a filled
// range, with no residual; it needs no base memory, so any delta may hold it.
TEST(LogFormat26, PartlyFilledPagesAreFilledRanges) {
  const std::vector<uint8_t> code = random_bytes(kPage, 6);
  std::vector<uint8_t> poisoning = code;
  std::fill(poisoning.begin(), poisoning.begin() + 1500, 0xcc);
  const auto delta = make_page_delta(3, code, poisoning);
  ASSERT_TRUE(delta);
  EXPECT_EQ(page_form(*delta), PageForm::filled_range);
  EXPECT_LT(delta->compressed_xor.size(), 8u);
  std::vector<uint8_t> page = code;
  apply_page_delta(*delta, page);
  EXPECT_EQ(page, poisoning);

  std::vector<uint8_t> cleared = code;  // and a residual for bytes written after it
  std::fill(cleared.begin() + 1000, cleared.begin() + 3000, 0);
  cleared[1500] = 0x42;
  const auto with_residual = make_page_delta(3, code, cleared);
  ASSERT_TRUE(with_residual);
  EXPECT_EQ(page_form(*with_residual), PageForm::filled_range);
  page = code;
  apply_page_delta(*with_residual, page);
  EXPECT_EQ(page, cleared);

  EXPECT_THROW(apply_page_delta(PageDelta{3, {0x03, 0x00, 0x40}}, page), FormatError) << "no value";
  EXPECT_THROW(apply_page_delta(PageDelta{3, {0x03, 0x80, 0x20, 0x01, 0xcc}}, page), FormatError)
      << "offset 4096";
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
  std::vector<uint8_t> poisoning = old;
  std::fill_n(poisoning.begin(), 2000, 0xcc);
  const PageChange changes[] = {{12, old, whole}, {13, old, few}, {14, old, poisoning}};
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
  Memory memory;
  const std::vector<Event> events = copied_page_events(memory);
  const auto& delta = std::get<MemoryDelta>(std::get<AsyncPosition>(events[1]).memory);
  ASSERT_TRUE(copied(delta.pages[0]) && copied(delta.pages[1]));
  ASSERT_EQ(page_form(delta.pages[2]), PageForm::filled_range);
  expect_round_trip_and_format_gate(events, 6, events[1], "2.6");
}

// The reader's fuzz corpus holds a 2.6 log with copied pages (regenerated
// with RR_WRITE_FUZZ_SEEDS=1 --gtest_filter=LogFormat26.FuzzSeedHoldsCopiedPages).
TEST(LogFormat26, FuzzSeedHoldsCopiedPages) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/copied-pages-v2.6.log";
  Memory memory;
  expect_fuzz_seed(seed, copied_page_events(memory), 4096, 6);
}
