// Log format 2.4: the literal page form of memory deltas (a page's new
// content instead of its XOR against the base), chosen where it is smaller,
// applied by replacing the page, refused by writers of older formats.
#include <gtest/gtest.h>

#include <random>

#include "../../librr/src/log_format.h"
#include "librr/compress.h"
#include "librr/page_delta.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

constexpr size_t kPage = 4096;

// New content that compresses well but is no fill (those are filled ranges
// since 2.6): a 16-byte pattern, as a page of a table or of text might be.
std::vector<uint8_t> pattern_page(uint8_t first) {
  std::vector<uint8_t> page(kPage);
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(first + i % 16);
  return page;
}

// The forms a 2.4 writer chose, built by hand: later writers may prefer others.
PageDelta literal_of(uint64_t gfn, const std::vector<uint8_t>& page) {
  std::vector<uint8_t> coded = zstd_compress(page, 1);
  coded.insert(coded.begin(), 0x01);
  return {gfn, coded};
}
PageDelta dense_xor_of(uint64_t gfn, const std::vector<uint8_t>& base,
                       const std::vector<uint8_t>& page) {
  std::vector<uint8_t> xored(kPage);
  for (size_t i = 0; i < kPage; ++i) xored[i] = base[i] ^ page[i];
  return {gfn, zstd_compress(xored, 1)};
}

std::vector<uint8_t> random_page(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> page(kPage);
  for (auto& byte : page) byte = static_cast<uint8_t>(rng());
  return page;
}

}  // namespace

// A page overwritten with unrelated, compressible content: the XOR against
// the old code is as random as the code, the new content is a pattern.
TEST(LogFormat24, OverwrittenPageIsLoggedAsItsNewContent) {
  const std::vector<uint8_t> base = random_page(1);
  const std::vector<uint8_t> poisoned = pattern_page(0xc0);
  const auto delta = make_page_delta(9, base, poisoned);
  ASSERT_TRUE(delta);
  EXPECT_TRUE(is_literal_page(*delta));
  EXPECT_LT(delta->compressed_xor.size(), 64u);
  std::vector<uint8_t> replayed = base;
  apply_page_delta(*delta, replayed);
  EXPECT_EQ(replayed, poisoned);
}

// A page changed in a few places keeps the sparse XOR form, and a page
// whose new content is no more compressible than its XOR keeps the XOR.
TEST(LogFormat24, OtherChangesKeepTheXorForms) {
  const std::vector<uint8_t> base = random_page(2);
  std::vector<uint8_t> few = base;
  few[100] ^= 1;
  few[2000] ^= 0x80;
  const auto sparse = make_page_delta(1, base, few);
  ASSERT_TRUE(sparse);
  EXPECT_FALSE(is_literal_page(*sparse));
  EXPECT_EQ(sparse->compressed_xor.front(), 0x00);

  std::vector<uint8_t> half_zeroed = base;  // the XOR is the old half: as random as the new page
  std::fill(half_zeroed.begin(), half_zeroed.begin() + kPage / 2, 0);
  std::vector<uint8_t> from_zero(kPage, 0);
  const auto dense = make_page_delta(2, from_zero, half_zeroed);
  ASSERT_TRUE(dense);
  EXPECT_FALSE(is_literal_page(*dense)) << "equal sizes keep the XOR form older readers know";
  std::vector<uint8_t> replayed = from_zero;
  apply_page_delta(*dense, replayed);
  EXPECT_EQ(replayed, half_zeroed);
}

TEST(LogFormat24, DamagedLiteralPageIsAFormatError) {
  const auto delta = make_page_delta(3, random_page(3), pattern_page(0x5a));
  ASSERT_TRUE(delta && is_literal_page(*delta));
  std::vector<uint8_t> page(kPage);
  PageDelta truncated = *delta;
  truncated.compressed_xor.resize(truncated.compressed_xor.size() / 2);
  EXPECT_THROW(apply_page_delta(truncated, page), FormatError);
  std::vector<uint8_t> small(kPage / 2);
  EXPECT_THROW(apply_page_delta(*delta, small), FormatError) << "a literal for another page size";
  EXPECT_THROW(apply_page_delta(PageDelta{3, {0x01}}, page), FormatError) << "marker only";
}

TEST(LogFormat24, LiteralPagesSurviveTheLogAndNeedFormat24) {
  const std::vector<uint8_t> base = random_page(4);
  const std::vector<uint8_t> poisoned = pattern_page(0xc0);
  const PageChange poison{0x42, base, poisoned};
  const MemoryDelta delta =
      make_memory_delta(7, {&poison, 1}, UnchangedPages::kKeep, DeltaBase::previous_position);
  ASSERT_EQ(delta.pages.size(), 1u);
  ASSERT_TRUE(is_literal_page(delta.pages[0]));
  const std::vector<Event> events = {AsyncPosition{{7, 1, 0}, 1, {1, 2, 3}, delta},
                                     EndOfRecording{{8, 0, 0}, "done", 0}};
  expect_round_trip_and_format_gate(events, 4, events[0], "2.4");
}

// The reader's fuzz corpus holds a 2.4 log with literal, sparse and dense
// pages (regenerated with RR_WRITE_FUZZ_SEEDS=1).
TEST(LogFormat24, FuzzSeedHoldsLiteralPages) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/literal-pages-v2.4.log";
  const std::vector<uint8_t> base = random_page(5);
  std::vector<uint8_t> few = base, half = base;
  few[7] ^= 0x10;
  std::fill(half.begin(), half.begin() + kPage / 2, 0);
  const std::vector<uint8_t> poisoned(kPage, 0xcc);
  const PageChange sparse_change{0x11, base, few};
  std::vector<Event> events;
  for (uint64_t t = 1; t <= 4; ++t) {
    MemoryDelta delta = make_memory_delta(t, {&sparse_change, 1}, UnchangedPages::kKeep,
                                          DeltaBase::previous_position);
    delta.pages.insert(delta.pages.begin(), literal_of(0x10, poisoned));
    delta.pages.push_back(dense_xor_of(0x12, base, half));
    events.push_back(InterruptDelivery{{t, 1, 0}, 0x20, 0});
    events.push_back(
        AsyncPosition{{t, 1, 0}, 1, std::vector<uint8_t>(48, static_cast<uint8_t>(t)), delta});
  }
  events.push_back(EndOfRecording{{5, 0, 0}, "done", 0});
  expect_fuzz_seed(seed, events, 4096, 4);
}
