// Log format 2.10: AsyncPosition memory kind 6 (SearchedStop with 32-bit
// register and pages hashes and its page listing as varints, ~10 bytes less
// per stop than kind 5 after compression) in real log files, its layout, the refusals around it,
// and the fuzz seed holding it.
#include <gtest/gtest.h>

#include <cstring>

#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

SearchedStop stop_with_32_bit_hashes(uint64_t registers, uint64_t pages,
                                     std::vector<uint64_t> gfns) {
  SearchedStop stop{0xffffffff81000d6e, registers, {pages, std::move(gfns)}};
  stop.hash_bits = 32;
  return stop;
}

}  // namespace

TEST(LogFormat210, SearchedStopsWith32BitHashesSurviveTheLogAndNeedFormat210) {
  const AsyncPosition newer{{1, 1, 0}, 1, {}, stop_with_32_bit_hashes(5, 6, {1, 2})};
  expect_round_trip_and_format_gate(searched_stop_stream(150, 32), 10, newer, "2.10");
}

// Kind byte 6, rip, 4-byte register hash, 4-byte pages hash, then the page
// count and each gfn's distance from the one before (the first from 0) as
// varints.
TEST(LogFormat210, SearchedStopIsMemoryKindSixWithFourByteHashesAndVarints) {
  const AsyncPosition stop{
      {9, 1, 0}, 1, {}, stop_with_32_bit_hashes(0x89abcdef, 0x01234567, {5, 6, 0x100})};
  const std::vector<uint8_t> bytes = encode_event(stop);
  const auto decoded = std::get<AsyncPosition>(decode_event(bytes));
  EXPECT_EQ(decoded, stop);
  EXPECT_EQ(std::get<SearchedStop>(decoded.memory).hash_mask(), 0xffffffffu);
  // Count 3, distances 5, 1 and 0xfa (two varint bytes).
  const std::vector<uint8_t> listing{3, 5, 1, 0xfa, 0x01};
  ASSERT_GT(bytes.size(), listing.size() + 17);
  const size_t listing_at = bytes.size() - listing.size();
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + listing_at, bytes.end()), listing);
  const size_t kind_at = listing_at - 4 - 4 - 8 - 1;
  EXPECT_EQ(bytes[kind_at], 6);
  uint64_t rip = 0;
  uint32_t registers = 0, pages = 0;
  std::memcpy(&rip, bytes.data() + kind_at + 1, sizeof rip);
  std::memcpy(&registers, bytes.data() + kind_at + 1 + 8, sizeof registers);
  std::memcpy(&pages, bytes.data() + kind_at + 1 + 8 + 4, sizeof pages);
  EXPECT_EQ(rip, 0xffffffff81000d6eu);
  EXPECT_EQ(registers, 0x89abcdefu);
  EXPECT_EQ(pages, 0x01234567u);

  // The reader refuses a repeated page (a 0 distance after the first), a
  // count beyond the bytes left and a varint longer than 64 bits.
  std::vector<uint8_t> repeated = bytes;
  repeated[listing_at + 2] = 0;
  EXPECT_THROW(decode_event(repeated), FormatError);
  std::vector<uint8_t> lying = bytes;
  lying[listing_at] = 6;
  try {
    decode_event(lying);
    ADD_FAILURE() << "a page count beyond the record was read";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("claims"), std::string::npos) << e.what();
  }
  std::vector<uint8_t> endless(bytes.begin(), bytes.begin() + listing_at + 1);
  endless.insert(endless.end(), 11, 0xff);
  EXPECT_THROW(decode_event(endless), FormatError);

  // A hash that does not fit 32 bits, or a width other than 32 and 64, is
  // refused by the writer rather than cut silently.
  for (const uint8_t bits : {uint8_t{32}, uint8_t{16}}) {
    AsyncPosition wide = stop;
    auto& searched = std::get<SearchedStop>(wide.memory);
    searched.hash_bits = bits;
    if (bits == 32) searched.registers_xxh3 = 0x100000000ull;
    EXPECT_THROW(encode_event(wide), Error) << int{bits};
  }
}

TEST(LogFormat210, ByteReportCountsTheNarrowerHashesAndVarints) {
  TempDir dir;
  const auto wide = dir / "kind5.log", narrow = dir / "kind6.log";
  const std::vector<Event> stream5 = searched_stop_stream(40, 64);
  write_events(wide, stream5);
  write_events(narrow, searched_stop_stream(40, 32));
  const LogByteReport report5 = measure_log_bytes(wide, std::nullopt);
  const LogByteReport report6 = measure_log_bytes(narrow, std::nullopt);
  const LogByteShare* memory5 = share_of(report5, "AsyncPosition.memory");
  const LogByteShare* memory6 = share_of(report6, "AsyncPosition.memory");
  ASSERT_TRUE(memory5 && memory6) << report6.to_string();
  // Per stop: 8 bytes of hashes, the count's 4 bytes against 1, and each
  // distance's 8 bytes against its varint's.
  auto varint_bytes = [](uint64_t v) { return v < 0x80 ? 1u : v < 0x4000 ? 2u : 3u; };
  uint64_t saved = 0;
  for (const Event& event : stream5) {
    const auto* async = std::get_if<AsyncPosition>(&event);
    const auto* searched = async ? std::get_if<SearchedStop>(&async->memory) : nullptr;
    if (!searched) continue;
    saved += 8 + 3;
    uint64_t previous = 0;
    for (const uint64_t gfn : searched->pages.gfns) {
      saved += 8 - varint_bytes(gfn - previous);
      previous = gfn;
    }
  }
  EXPECT_EQ(memory5->raw_bytes - memory6->raw_bytes, saved);
}

// fuzz/seeds/librr_log_reader/searched-stop-v2.10.log is this stream
// (plain), so the log fuzzer starts from kind-6 records. RR_WRITE_FUZZ_SEEDS=1
// rewrites it (after a change to the stream or format).
TEST(LogFormat210, FuzzSeedHoldsSearchedStopsWith32BitHashes) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/searched-stop-v2.10.log";
  expect_fuzz_seed(seed, searched_stop_stream(14, 32), 512, 10);
}
