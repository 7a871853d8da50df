// Log format 2.9: AsyncPosition memory kind 5 (SearchedStop: a stop replay
// finds by a breakpoint search, logged as its rip, a register hash and a
// pages digest whose gfns are stored as distances, without the vCPU state)
// in real log files, its layout, the refusals around it, and the fuzz seed
// holding it.
#include <gtest/gtest.h>

#include <cstring>

#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

uint64_t u64_at(const std::vector<uint8_t>& bytes, size_t offset) {
  uint64_t value = 0;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

}  // namespace

TEST(LogFormat29, SearchedStopsSurviveTheLogInEveryModeAndNeedFormat29) {
  const AsyncPosition newer{{1, 1, 0}, 1, {}, SearchedStop{0x1000, 5, {6, {1, 2}}}};
  expect_round_trip_and_format_gate(searched_stop_stream(150), 9, newer, "2.9");
}

// Kind byte 5, rip, register hash, pages hash, page count, then each gfn as
// its distance from the one before (the first from 0).
TEST(LogFormat29, SearchedStopIsMemoryKindFiveWithGfnDistances) {
  const AsyncPosition stop{
      {9, 1, 0}, 1, {}, SearchedStop{0xffffffff81000d6e, 0x0123456789abcdef, {42, {5, 6, 0x100}}}};
  const std::vector<uint8_t> bytes = encode_event(stop);
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(bytes)), stop);
  const size_t gfns_at = bytes.size() - 3 * 8;
  EXPECT_EQ(u64_at(bytes, gfns_at), 5u);
  EXPECT_EQ(u64_at(bytes, gfns_at + 8), 1u);
  EXPECT_EQ(u64_at(bytes, gfns_at + 16), 0x100u - 6);
  const size_t kind_at = gfns_at - 4 - 3 * 8 - 1;
  EXPECT_EQ(bytes[kind_at], 5);
  EXPECT_EQ(u64_at(bytes, kind_at + 1), 0xffffffff81000d6eu);

  // The writer refuses an unordered listing; the reader a 0 distance after
  // the first gfn (a repeated page) and a distance that wraps around.
  AsyncPosition unordered = stop;
  std::get<SearchedStop>(unordered.memory).pages.gfns = {6, 5};
  EXPECT_THROW(encode_event(unordered), Error);
  std::vector<uint8_t> repeated = bytes;
  std::memset(repeated.data() + gfns_at + 8, 0, 8);
  EXPECT_THROW(decode_event(repeated), FormatError);
  std::vector<uint8_t> wrapping = bytes;
  std::memset(wrapping.data() + gfns_at + 16, 0xff, 8);
  EXPECT_THROW(decode_event(wrapping), FormatError);
}

TEST(LogFormat29, PageCountBeyondTheRecordIsRefusedBeforeAllocating) {
  const AsyncPosition stop{{9, 1, 0}, 1, {}, SearchedStop{0x1000, 1, {2, {3}}}};
  std::vector<uint8_t> bytes = encode_event(stop);
  const uint32_t huge = 0x40000000;
  std::memcpy(bytes.data() + bytes.size() - 8 - 4, &huge, sizeof huge);
  try {
    decode_event(bytes);
    ADD_FAILURE() << "a page count beyond the record was read";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("claims"), std::string::npos) << e.what();
  }
}

TEST(LogFormat29, ByteReportCountsSearchedStopsAsAsyncMemory) {
  TempDir dir;
  const auto path = dir / "rec.log";
  write_events(path, searched_stop_stream(40));
  const LogByteReport report = measure_log_bytes(path, std::nullopt);
  const LogByteShare* memory = share_of(report, "AsyncPosition.memory");
  ASSERT_TRUE(memory) << report.to_string();
  EXPECT_EQ(memory->records, 40u + 5u);
  // Per searched stop: kind, rip, two hashes, page count, 1 + t % 3 gfns;
  // per delta: kind, landmark and page count.
  uint64_t gfns = 0;
  for (uint64_t t = 1; t <= 40; ++t) gfns += 1 + t % 3;
  EXPECT_EQ(memory->raw_bytes, 40u * (1 + 3 * 8 + 4) + gfns * 8 + 5u * (1 + 8 + 4));
}

// fuzz/seeds/librr_log_reader/searched-stop-v2.9.log is this stream (plain),
// so the log fuzzer starts from kind-5 records. RR_WRITE_FUZZ_SEEDS=1
// rewrites it (after a change to the stream or format).
TEST(LogFormat29, FuzzSeedHoldsSearchedStops) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/searched-stop-v2.9.log";
  expect_fuzz_seed(seed, searched_stop_stream(14), 512, 9);
}
