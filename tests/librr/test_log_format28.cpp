// Log format 2.8: AsyncPosition memory kind 4 (KernelReturn: a stop at the
// kernel's return to user mode that replay re-executes to) in real log files,
// its layout, the refusals around it, and the fuzz seed holding it.
#include <gtest/gtest.h>

#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

const CodeArrivals kEntries{{0x101000, 0x101040, 0x101080}, 1};

// Per tick an interrupt at a kernel-return stop after 1 + tick % 4 kernel
// entries, and now and then an ordinary stop with a memory delta.
std::vector<Event> kernel_return_stops(uint64_t ticks) {
  std::vector<Event> events;
  for (uint64_t t = 1; t <= ticks; ++t) {
    const Position at{t * 3, 1, 0};
    CodeArrivals entries = kEntries;
    entries.count = static_cast<uint32_t>(1 + t % 4);
    events.push_back(AsyncPosition{
        at, 1, {}, KernelReturn{0x1010f0, t * 0x9e3779b97f4a7c15ull}, std::move(entries)});
    events.push_back(InterruptDelivery{at, 0x20, 0});
    if (t % 7 == 0)
      events.push_back(AsyncPosition{{t * 3, 2, 0},
                                     1,
                                     std::vector<uint8_t>(64, 0x5a),
                                     MemoryDelta{t * 3, {}, DeltaBase::previous_position},
                                     kEntries});
  }
  events.push_back(EndOfRecording{{ticks * 3 + 1, 0, 0}, "done", 0});
  return events;
}

}  // namespace

TEST(LogFormat28, KernelReturnStopsSurviveTheLogInEveryModeAndNeedFormat28) {
  const AsyncPosition newer{{1, 1, 0}, 1, {}, KernelReturn{0x1010f0, 5}, kEntries};
  expect_round_trip_and_format_gate(kernel_return_stops(150), 8, newer, "2.8");
}

// Kind byte 4, the return address and the register hash, then the
// kernel-entry tail, which such a stop cannot do without: replay counts
// those entries to find it.
TEST(LogFormat28, KernelReturnIsMemoryKindFourAndNeedsItsKernelEntries) {
  const AsyncPosition stop{{9, 1, 0}, 1, {}, KernelReturn{0x1010f0, 0x0123456789abcdef}, kEntries};
  const std::vector<uint8_t> bytes = encode_event(stop);
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(bytes)), stop);
  // The tail: address count, three addresses, the count.
  constexpr size_t kTail = 1 + 3 * 8 + 4;
  const size_t kind_at = bytes.size() - kTail - 16 - 1;
  EXPECT_EQ(bytes[kind_at], 4);

  AsyncPosition without = stop;
  without.kernel_entries.reset();
  EXPECT_THROW(encode_event(without), Error) << "the writer refuses what readers refuse";
  try {
    decode_event(std::span(bytes).first(bytes.size() - kTail));
    ADD_FAILURE() << "a kernel-return stop without its kernel-entry count was read";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("without its kernel-entry count"), std::string::npos)
        << e.what();
  }
}

TEST(LogFormat28, ByteReportCountsKernelReturnsAsAsyncMemory) {
  TempDir dir;
  const auto path = dir / "rec.log";
  write_events(path, kernel_return_stops(40));
  const LogByteReport report = measure_log_bytes(path, std::nullopt);
  const LogByteShare* memory = share_of(report, "AsyncPosition.memory");
  const LogByteShare* state = share_of(report, "AsyncPosition.vcpu_state");
  ASSERT_TRUE(memory && state) << report.to_string();
  EXPECT_EQ(memory->records, 40u + 5u);
  // Kind, return address and hash per kernel-return stop; kind, landmark and
  // page count per delta.
  EXPECT_EQ(memory->raw_bytes, 40u * (1 + 8 + 8) + 5u * (1 + 8 + 4));
}

// fuzz/seeds/librr_log_reader/kernel-return-v2.8.log is this stream (plain),
// so the log fuzzer starts from kind-4 records. RR_WRITE_FUZZ_SEEDS=1
// rewrites it (after a change to the stream or format).
TEST(LogFormat28, FuzzSeedHoldsKernelReturns) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/kernel-return-v2.8.log";
  expect_fuzz_seed(seed, kernel_return_stops(14), 512, 8);
}
