// Log format 2.11: AsyncPosition memory kinds 7 (a SearchedStop with one
// 32-bit hash of its registers and pages, 4 bytes less per stop than kind 6)
// and 8 (a KernelReturn with a 32-bit registers hash, 4 bytes less than kind
// 4) in real log files, their layout, the refusals around them, and the fuzz
// seed holding them.
#include <gtest/gtest.h>

#include <cstring>

#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

SearchedStop stop_with_one_hash(uint64_t hash, std::vector<uint64_t> gfns) {
  SearchedStop stop{0xffffffff81000d6e, 0, {hash, std::move(gfns)}};
  stop.hash_bits = 32;
  stop.one_hash = true;
  return stop;
}

KernelReturn return_with_32_bit_hash(uint64_t hash) {
  KernelReturn stop{0xffffffff81000e40, hash};
  stop.hash_bits = 32;
  return stop;
}

}  // namespace

TEST(LogFormat211, OneHashStopsSurviveTheLogAndNeedFormat211) {
  const AsyncPosition searched{{1, 1, 0}, 1, {}, stop_with_one_hash(6, {1, 2})};
  expect_round_trip_and_format_gate(one_hash_stop_stream(150), 11, searched, "2.11");
  const AsyncPosition at_return{
      {1, 1, 0}, 1, {}, return_with_32_bit_hash(7), CodeArrivals{{0x1000}, 2}};
  expect_round_trip_and_format_gate(one_hash_stop_stream(20), 11, at_return, "2.11");
}

// Kind byte 7, rip, the one 4-byte hash, then the page count and each gfn's
// distance from the one before as varints (as kind 6, without its register hash).
TEST(LogFormat211, SearchedStopIsMemoryKindSevenWithOneFourByteHash) {
  const AsyncPosition stop{{9, 1, 0}, 1, {}, stop_with_one_hash(0x01234567, {5, 6, 0x100})};
  const std::vector<uint8_t> bytes = encode_event(stop);
  const auto decoded = std::get<AsyncPosition>(decode_event(bytes));
  EXPECT_EQ(decoded, stop);
  const std::vector<uint8_t> listing{3, 5, 1, 0xfa, 0x01};
  ASSERT_GT(bytes.size(), listing.size() + 13);
  const size_t listing_at = bytes.size() - listing.size();
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + listing_at, bytes.end()), listing);
  const size_t kind_at = listing_at - 4 - 8 - 1;
  EXPECT_EQ(bytes[kind_at], 7);
  expect_rip_and_hash_after(bytes, kind_at, 0xffffffff81000d6e, 0x01234567);

  // The writer refuses a one-hash stop with a register hash (it would be
  // dropped), a wider hash, or a hash that does not fit 32 bits.
  for (int refusal = 0; refusal < 3; ++refusal) {
    AsyncPosition bad = stop;
    auto& searched = std::get<SearchedStop>(bad.memory);
    if (refusal == 0) searched.registers_xxh3 = 1;
    if (refusal == 1) searched.hash_bits = 64;
    if (refusal == 2) searched.pages.xxh3 = 0x100000000ull;
    EXPECT_THROW(encode_event(bad), Error) << refusal;
  }
}

// Kind byte 8, return rip, the 4-byte registers hash, then the kernel-entry
// count every kernel-return stop carries; without that tail the reader
// refuses it as it does kind 4.
TEST(LogFormat211, KernelReturnIsMemoryKindEightWithAFourByteHash) {
  const AsyncPosition stop{
      {9, 1, 0}, 1, {}, return_with_32_bit_hash(0x89abcdef), CodeArrivals{{0x1000, 0x1040}, 3}};
  const std::vector<uint8_t> bytes = encode_event(stop);
  const auto decoded = std::get<AsyncPosition>(decode_event(bytes));
  EXPECT_EQ(decoded, stop);
  EXPECT_EQ(std::get<KernelReturn>(decoded.memory).hash_mask(), 0xffffffffu);
  const auto kind = std::find(bytes.begin(), bytes.end(), uint8_t{8});
  ASSERT_NE(kind, bytes.end());
  const size_t kind_at = static_cast<size_t>(kind - bytes.begin());
  ASSERT_GT(bytes.size(), kind_at + 13);
  expect_rip_and_hash_after(bytes, kind_at, 0xffffffff81000e40, 0x89abcdef);

  const std::vector<uint8_t> without_count(bytes.begin(), bytes.begin() + kind_at + 13);
  try {
    decode_event(without_count);
    ADD_FAILURE() << "a kernel-return stop without its kernel-entry count was read";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("kernel-entry count"), std::string::npos) << e.what();
  }
  AsyncPosition wide = stop;
  std::get<KernelReturn>(wide.memory).registers_xxh3 = 0x100000000ull;
  EXPECT_THROW(encode_event(wide), Error);
}

TEST(LogFormat211, ByteReportCountsFourBytesLessPerStop) {
  TempDir dir;
  const auto two = dir / "kind6.log", one = dir / "kind7.log";
  write_events(two, searched_stop_stream(40, 32));
  std::vector<Event> stream7 = one_hash_stop_stream(40);
  std::erase_if(stream7, [](const Event& event) {
    const auto* async = std::get_if<AsyncPosition>(&event);
    return async && std::holds_alternative<KernelReturn>(async->memory);
  });
  write_events(one, stream7);
  const LogByteReport report6 = measure_log_bytes(two, std::nullopt);
  const LogByteReport report7 = measure_log_bytes(one, std::nullopt);
  const LogByteShare* memory6 = share_of(report6, "AsyncPosition.memory");
  const LogByteShare* memory7 = share_of(report7, "AsyncPosition.memory");
  ASSERT_TRUE(memory6 && memory7) << report7.to_string();
  EXPECT_EQ(memory6->raw_bytes - memory7->raw_bytes, 40u * 4);
}

// fuzz/seeds/librr_log_reader/one-hash-stops-v2.11.log is this stream
// (plain), so the log fuzzer starts from kind-7 and kind-8 records.
// RR_WRITE_FUZZ_SEEDS=1 rewrites it (after a change to the stream or format).
TEST(LogFormat211, FuzzSeedHoldsOneHashAndNarrowKernelReturnStops) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/one-hash-stops-v2.11.log";
  expect_fuzz_seed(seed, one_hash_stop_stream(14), 512, 11);
}
