// Log format 2.13: AsyncPosition memory kind 10, a memory delta against guest
// memory right after the kernel's first return to user mode after the
// previous position (DeltaBase::return_to_user, with the return's address),
// in real log files, its layout, the refusals around it, and the fuzz seed
// holding it.
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "librr/page_delta.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

constexpr uint64_t kReturnRip = 0x1001f4;

// A stop in user mode whose loop wrote `changed_bytes` bytes of one page
// since the kernel returned there (none: an empty delta).
AsyncPosition stop_after_return(uint64_t landmark, size_t changed_bytes) {
  std::array<uint8_t, 4096> before{}, after{};
  for (size_t i = 0; i < changed_bytes; ++i) after[64 + i] = static_cast<uint8_t>(landmark + i + 1);
  MemoryDelta delta;
  delta.reset_landmark = landmark;
  delta.base = DeltaBase::return_to_user;
  delta.return_rip = kReturnRip;
  if (changed_bytes > 0) delta.pages.push_back(*make_page_delta(0x2a0, before, after));
  AsyncPosition stop{{landmark, 1, 0}, 7, std::vector<uint8_t>(40, 0x5a), delta};
  stop.kernel_entries = CodeArrivals{{0x100100, 0x100140, 0x100180}, 0};
  return stop;
}

// Per tick a landmark's interrupt, then a stop in user mode based on the
// return to user mode (every other one writing nothing) and its interrupt.
std::vector<Event> return_to_user_stream(uint64_t ticks) {
  std::vector<Event> events;
  for (uint64_t t = 1; t <= ticks; ++t) {
    events.emplace_back(stop_after_return(t, t % 2 ? 0 : 1 + t % 5));
    events.emplace_back(InterruptDelivery{{t, 1, 0}, 0x20, 0});
  }
  events.emplace_back(EndOfRecording{{ticks + 1, 0, 0}, "exit", 0});
  return events;
}

}  // namespace

TEST(LogFormat213, ReturnToUserDeltasSurviveTheLogAndNeedFormat213) {
  expect_round_trip_and_format_gate(return_to_user_stream(120), 13, stop_after_return(3, 2),
                                    "2.13");
}

// Kind byte 10, the reset landmark, the return's address, then the pages as
// for kinds 1 and 2.
TEST(LogFormat213, ReturnToUserDeltaIsMemoryKindTenWithTheReturnAddress) {
  const AsyncPosition stop = stop_after_return(9, 3);
  const std::vector<uint8_t> bytes = encode_event(stop);
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(bytes)), stop);
  const std::vector<uint8_t> state = stop.vcpu_state;
  const auto state_at = std::search(bytes.begin(), bytes.end(), state.begin(), state.end());
  ASSERT_NE(state_at, bytes.end());
  const size_t kind_at = static_cast<size_t>(state_at - bytes.begin()) + state.size();
  ASSERT_GE(bytes.size(), kind_at + 21);
  EXPECT_EQ(bytes[kind_at], 10);
  uint64_t landmark = 0, return_rip = 0;
  std::memcpy(&landmark, bytes.data() + kind_at + 1, sizeof landmark);
  std::memcpy(&return_rip, bytes.data() + kind_at + 9, sizeof return_rip);
  EXPECT_EQ(landmark, 9u);
  EXPECT_EQ(return_rip, kReturnRip);
  // The other bases carry no return address.
  AsyncPosition previous = stop;
  std::get<MemoryDelta>(previous.memory).base = DeltaBase::previous_position;
  std::get<MemoryDelta>(previous.memory).return_rip = 0;
  EXPECT_EQ(encode_event(previous).size() + 8, bytes.size());
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(encode_event(previous))), previous);
  // Cut short anywhere in the address, it is refused.
  for (size_t cut = 1; cut <= 8; ++cut)
    EXPECT_THROW(decode_event(std::vector<uint8_t>(bytes.begin(),
                                                   bytes.begin() + kind_at + 1 + 8 + 8 - cut)),
                 FormatError)
        << cut;
}

// fuzz/seeds/librr_log_reader/return-to-user-v2.13.log is this stream
// (plain), so the log fuzzer starts from kind-10 records.
// RR_WRITE_FUZZ_SEEDS=1 rewrites it (after a change to the stream or format).
TEST(LogFormat213, FuzzSeedHoldsReturnToUserDeltas) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/return-to-user-v2.13.log";
  expect_fuzz_seed(seed, return_to_user_stream(14), 512, 13);
}
