// Log format 2.12: AsyncPosition memory kind 9, a SearchedStop whose pages
// are implied (those written since the previous position, which replay
// tracks itself) instead of listed, in real log files, its layout, the
// refusals around it, and the fuzz seed holding it.
#include <gtest/gtest.h>

#include <cstring>

#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

SearchedStop stop_with_implied_pages(uint64_t hash) {
  SearchedStop stop{0xffffffff81000d6e, 0, {hash, {}}};
  stop.hash_bits = 32;
  stop.one_hash = true;
  stop.pages_implied = true;
  return stop;
}

}  // namespace

TEST(LogFormat212, ImpliedPagesStopsSurviveTheLogAndNeedFormat212) {
  const AsyncPosition newer{{1, 1, 0}, 1, {}, stop_with_implied_pages(6)};
  expect_round_trip_and_format_gate(implied_pages_stop_stream(150), 12, newer, "2.12");
}

// Kind byte 9, rip, the one 4-byte hash, and nothing after it (no page
// count, no listing).
TEST(LogFormat212, SearchedStopIsMemoryKindNineWithRipAndHashOnly) {
  const AsyncPosition stop{{9, 1, 0}, 1, {}, stop_with_implied_pages(0x01234567)};
  const std::vector<uint8_t> bytes = encode_event(stop);
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(bytes)), stop);
  ASSERT_GE(bytes.size(), 13u);
  const size_t kind_at = bytes.size() - 13;
  EXPECT_EQ(bytes[kind_at], 9);
  expect_rip_and_hash_after(bytes, kind_at, 0xffffffff81000d6e, 0x01234567);
  // Cut short, it is refused.
  EXPECT_THROW(decode_event(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1)), FormatError);

  // The writer refuses implied pages with a listing (it would be dropped)
  // or without the one hash.
  for (int refusal = 0; refusal < 2; ++refusal) {
    AsyncPosition bad = stop;
    auto& searched = std::get<SearchedStop>(bad.memory);
    if (refusal == 0) searched.pages.gfns = {5};
    if (refusal == 1) searched.one_hash = false;
    EXPECT_THROW(encode_event(bad), Error) << refusal;
  }
}

TEST(LogFormat212, ByteReportCountsNoListing) {
  TempDir dir;
  const auto listed = dir / "kind7.log", implied = dir / "kind9.log";
  std::vector<Event> stream7 = one_hash_stop_stream(40);
  std::erase_if(stream7, [](const Event& event) {
    const auto* async = std::get_if<AsyncPosition>(&event);
    return async && std::holds_alternative<KernelReturn>(async->memory);
  });
  write_events(listed, stream7);
  write_events(implied, implied_pages_stop_stream(40));
  // Per stop: the count and each distance from the gfn before, as varints.
  auto varint_bytes = [](uint64_t v) { return v < 0x80 ? 1u : v < 0x4000 ? 2u : 3u; };
  uint64_t listing_bytes = 0;
  for (const Event& event : stream7)
    if (const auto* async = std::get_if<AsyncPosition>(&event))
      if (const auto* searched = std::get_if<SearchedStop>(&async->memory)) {
        listing_bytes += varint_bytes(searched->pages.gfns.size());
        uint64_t previous = 0;
        for (const uint64_t gfn : searched->pages.gfns) {
          listing_bytes += varint_bytes(gfn - previous);
          previous = gfn;
        }
      }
  const LogByteReport report7 = measure_log_bytes(listed, std::nullopt);
  const LogByteReport report9 = measure_log_bytes(implied, std::nullopt);
  const LogByteShare* memory7 = share_of(report7, "AsyncPosition.memory");
  const LogByteShare* memory9 = share_of(report9, "AsyncPosition.memory");
  ASSERT_TRUE(memory7 && memory9) << report9.to_string();
  EXPECT_EQ(memory7->raw_bytes - memory9->raw_bytes, listing_bytes);
}

// fuzz/seeds/librr_log_reader/implied-pages-v2.12.log is this stream
// (plain), so the log fuzzer starts from kind-9 records.
// RR_WRITE_FUZZ_SEEDS=1 rewrites it (after a change to the stream or format).
TEST(LogFormat212, FuzzSeedHoldsImpliedPagesStops) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/implied-pages-v2.12.log";
  expect_fuzz_seed(seed, implied_pages_stop_stream(14), 512, 12);
}
