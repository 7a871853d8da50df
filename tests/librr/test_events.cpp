#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/events.h"
#include "librr/page_delta.h"

using namespace librr;

namespace {

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<Event> one_of_each() {
  std::mt19937_64 rng(1);
  std::vector<uint8_t> shadow(4096, 0x11), current = shadow;
  current[100] = 0x99;
  current[4000] = 0x42;
  PageChange change{77, shadow, current};
  Digest256 d1 = hash256(shadow), d2 = hash256(current);
  return {
      InterruptDelivery{{10, 1, 0}, 0x20, 4},
      AsyncPosition{{11, 2, 0}, 7, random_bytes(rng, 1500), MemoryDigest{d1}},
      AsyncPosition{{11, 3, 0}, 7, random_bytes(rng, 300), make_memory_delta(5, {&change, 1})},
      AsyncPosition{{11, 4, 0}, 7, {}, MemoryDelta{9, {}}},
      AsyncPosition{
          {11, 5, 0},
          7,
          random_bytes(rng, 40),
          make_memory_delta(11, {&change, 1}, UnchangedPages::kKeep, DeltaBase::previous_position)},
      AsyncPosition{{11, 6, 0},
                    7,
                    random_bytes(rng, 40),
                    MemoryDelta{11, {}, DeltaBase::previous_position},
                    CodeArrivals{{0x101000, 0x101010, 0x101020}, 17}},
      AsyncPosition{{11, 7, 0}, 7, random_bytes(rng, 40), PagesDigest{0x0123456789abcdef, {}}},
      AsyncPosition{{11, 8, 0},
                    7,
                    random_bytes(rng, 40),
                    PagesDigest{0xfeedfacecafebeef, {3, 77, 0x100000, 0xffffffffff}}},
      AsyncPosition{{11, 9, 0},
                    7,
                    random_bytes(rng, 40),
                    PagesDigest{42, {1, 2}},
                    CodeArrivals{{0x101000}, 3}},
      Input{{12, 0, 0}, "serial0", {'h', 'i', '\n'}},
      Input{{12, 0, 0}, "net0", {}},
      StateDigest{{13, 0, 0}, d1, d2, std::nullopt},
      StateDigest{{13, 0, 5}, d2, d1, std::string("rip=0x1000")},
      CheckpointRef{{14, 0, 0}, "checkpoint-14.snap", d2},
      EndOfRecording{{15, 0, 0}, "guest halted", -3},
  };
}

// The kernel-entry tail of an AsyncPosition is optional (absent before
// format 2.2): the record cut just before it is whole.
bool is_whole_without_tail(const Event& event, std::span<const uint8_t> bytes, size_t cut) {
  const auto* async = std::get_if<AsyncPosition>(&event);
  if (!async || !async->kernel_entries) return false;
  return cut == bytes.size() - (1 + 8 * async->kernel_entries->addresses.size() + 4);
}

}  // namespace

TEST(Events, EveryRecordTypeRoundTrips) {
  for (const auto& event : one_of_each()) {
    auto bytes = encode_event(event);
    EXPECT_EQ(bytes[0], static_cast<uint8_t>(event_type(event)));
    Event back = decode_event(bytes);
    EXPECT_EQ(back, event) << event_type_name(event_type(event));
    EXPECT_EQ(event_position(back), event_position(event));
  }
}

TEST(Events, RejectsUnknownTagsTrailingBytesAndTruncation) {
  for (const auto& event : one_of_each()) {
    auto bytes = encode_event(event);
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_THROW(decode_event(longer), FormatError);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      if (is_whole_without_tail(event, bytes, cut)) continue;
      EXPECT_THROW(decode_event(std::span(bytes).first(cut)), FormatError) << cut;
    }
  }
  for (uint8_t tag : {0, 7, 0x80, 0xff}) {
    std::vector<uint8_t> bytes{tag, 0, 0, 0};
    try {
      decode_event(bytes);
      ADD_FAILURE() << "tag " << int(tag) << " accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("unknown event record tag"), std::string::npos);
    }
  }
}

TEST(Events, KernelEntriesNeedOneToFourAddresses) {
  AsyncPosition async{{3, 1, 0}, 7, {}, MemoryDelta{3, {}, DeltaBase::previous_position}};
  const std::vector<uint8_t> without = encode_event(async);
  EXPECT_FALSE(std::get<AsyncPosition>(decode_event(without)).kernel_entries.has_value());
  for (const uint8_t addresses : {0, 5, 255}) {
    std::vector<uint8_t> bytes = without;
    bytes.push_back(addresses);
    for (int i = 0; i < addresses * 8 + 4; ++i) bytes.push_back(0);
    try {
      decode_event(bytes);
      ADD_FAILURE() << int(addresses) << " addresses accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("kernel entries at"), std::string::npos) << e.what();
    }
  }
}

TEST(Events, HugeCountsAreRejectedBeforeAllocating) {
  // AsyncPosition with a delta claiming 4 billion pages in a few bytes.
  ByteWriter w;
  w.u8(static_cast<uint8_t>(EventType::async_position));
  w.u64(1), w.u64(0), w.u64(0), w.u32(0), w.u32(0);  // pos, format, empty state
  w.u8(1), w.u64(0), w.u32(0xffffffff);
  EXPECT_THROW(decode_event(w.data()), FormatError);
  // Input whose data claims 4 GiB.
  ByteWriter w2;
  w2.u8(static_cast<uint8_t>(EventType::input));
  w2.u64(1), w2.u64(0), w2.u64(0), w2.u32(0), w2.u32(0xffffffff);
  EXPECT_THROW(decode_event(w2.data()), FormatError);
}

namespace {

// An AsyncPosition with an empty vCPU state and a pages digest as written by
// hand: tag, position, format, state length, kind 3, xxh3, page_count, gfns.
std::vector<uint8_t> pages_digest_record(uint32_t page_count, std::span<const uint64_t> gfns) {
  ByteWriter w;
  w.u8(static_cast<uint8_t>(EventType::async_position));
  w.u64(1), w.u64(1), w.u64(0), w.u32(0), w.u32(0);
  w.u8(3), w.u64(0x5eed), w.u32(page_count);
  for (const uint64_t gfn : gfns) w.u64(gfn);
  return w.take();
}
constexpr size_t kFirstGfnOffset = 1 + 24 + 4 + 4 + 1 + 8 + 4;

// decode_event and check_event both refuse `bytes`; returns decode's error.
FormatError refusal_of(std::span<const uint8_t> bytes) {
  Position pos;
  EXPECT_THROW(check_event(bytes, pos), FormatError);
  try {
    decode_event(bytes);
  } catch (const FormatError& e) {
    return e;
  }
  ADD_FAILURE() << "record accepted";
  return FormatError("accepted");
}

}  // namespace

TEST(Events, PagesDigestIsMemoryKindThree) {
  const std::vector<uint64_t> gfns = {5, 9};
  const auto bytes = pages_digest_record(2, gfns);
  const auto async = std::get<AsyncPosition>(decode_event(bytes));
  EXPECT_EQ(async.memory, (decltype(async.memory){PagesDigest{0x5eed, {5, 9}}}));
  EXPECT_FALSE(async.kernel_entries.has_value());
  EXPECT_EQ(encode_event(async), bytes) << "the encoder writes the same layout";
}

TEST(Events, PagesDigestGfnsMustBeStrictlyAscending) {
  for (const std::vector<uint64_t>& gfns :
       {std::vector<uint64_t>{9, 5}, {5, 5}, {1, 2, 3, 3}, {7, 0x1000, 0x10}}) {
    const FormatError e = refusal_of(pages_digest_record(static_cast<uint32_t>(gfns.size()), gfns));
    EXPECT_NE(std::string(e.what()).find("strictly ascending"), std::string::npos) << e.what();
    // The offset names the first gfn out of order.
    const size_t bad =
        std::adjacent_find(gfns.begin(), gfns.end(), std::greater_equal<>()) - gfns.begin() + 1;
    EXPECT_EQ(e.offset(), static_cast<int64_t>(kFirstGfnOffset + 8 * bad)) << e.what();
  }
  // The writer side refuses to produce what readers refuse.
  EXPECT_THROW(encode_event(AsyncPosition{{1, 1, 0}, 1, {}, PagesDigest{0, {4, 2}}}), Error);
}

TEST(Events, PagesDigestCountBeyondTheRecordIsRefusedBeforeAllocating) {
  const std::vector<uint64_t> two = {1, 2};
  for (const uint32_t count : {3u, 0x1fffffffu, 0xffffffffu}) {
    const FormatError e = refusal_of(pages_digest_record(count, two));
    EXPECT_NE(std::string(e.what()).find("pages digest claims"), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), static_cast<int64_t>(kFirstGfnOffset - 4)) << "at the count";
  }
  // Two gfns and a kernel-entry tail of 13 bytes: a count of 3 fits in the
  // bytes left and takes the tail's first 8 bytes for a gfn; the 5 bytes
  // left are no tail, so the record is refused, never silently misread.
  ByteWriter tail;
  tail.u8(1), tail.u64(0x1000), tail.u32(1);
  auto bytes = pages_digest_record(3, two);
  bytes.insert(bytes.end(), tail.data().begin(), tail.data().end());
  EXPECT_THROW(decode_event(bytes), FormatError);
}

TEST(Events, MemoryDeltaRebuildsPagesAndSkipsUnchangedOnes) {
  std::mt19937_64 rng(5);
  std::vector<std::vector<uint8_t>> shadows, currents;
  for (int i = 0; i < 8; ++i) {
    shadows.push_back(random_bytes(rng, 4096));
    currents.push_back(shadows.back());
    if (i % 3 != 0)  // pages 0, 3, 6 stay unchanged
      for (int k = 0; k < 20; ++k) currents.back()[rng() % 4096] ^= 0x5a;
  }
  std::vector<PageChange> changes;
  for (int i = 0; i < 8; ++i) changes.push_back({uint64_t(1000 + i), shadows[i], currents[i]});
  MemoryDelta delta = make_memory_delta(42, changes);
  EXPECT_EQ(delta.reset_landmark, 42u);
  ASSERT_EQ(delta.pages.size(), 5u);
  for (const auto& page : delta.pages) {
    size_t i = page.gfn - 1000;
    EXPECT_NE(i % 3, 0u);
    EXPECT_LT(page.compressed_xor.size(), 400u) << "sparse XOR should compress well";
    auto rebuilt = shadows[i];
    apply_page_delta(page, rebuilt);
    EXPECT_EQ(rebuilt, currents[i]);
  }
  // A delta applied to a page of the wrong size is refused, not overrun.
  std::vector<uint8_t> small(1024);
  EXPECT_THROW(apply_page_delta(delta.pages[0], small), FormatError);
  PageDelta garbage{1, {1, 2, 3, 4}};
  auto page = shadows[0];
  EXPECT_THROW(apply_page_delta(garbage, page), FormatError);
}

// A page changed in a few places is stored as a sparse run list (a few bytes,
// first byte 0); a page changed all over as a zstd frame. Both rebuild exactly.
TEST(Events, PageDeltasAreSparseForFewChangesAndZstdForMany) {
  std::mt19937_64 rng(9);
  const auto shadow = random_bytes(rng, 4096);
  auto few = shadow;
  few[0] ^= 1;
  few[100] ^= 2;
  few[101] ^= 3;
  few[4095] ^= 4;
  auto sparse = make_page_delta(7, shadow, few);
  ASSERT_TRUE(sparse);
  EXPECT_EQ(sparse->compressed_xor.front(), 0u);
  EXPECT_LT(sparse->compressed_xor.size(), 20u);
  auto rebuilt = shadow;
  apply_page_delta(*sparse, rebuilt);
  EXPECT_EQ(rebuilt, few);

  const auto many = random_bytes(rng, 4096);
  auto dense = make_page_delta(7, shadow, many);
  ASSERT_TRUE(dense);
  EXPECT_EQ(dense->compressed_xor.front(), 0x28u) << "a zstd frame";
  rebuilt = shadow;
  apply_page_delta(*dense, rebuilt);
  EXPECT_EQ(rebuilt, many);
}

TEST(Events, HostileSparsePageDeltasAreRefused) {
  std::vector<uint8_t> page(4096);
  auto apply = [&](std::vector<uint8_t> bytes) { apply_page_delta(PageDelta{1, bytes}, page); };
  // marker 0, page size 4096 (varint 0x80 0x20), then (skip, length, bytes...).
  EXPECT_NO_THROW(apply({0, 0x80, 0x20, 5, 1, 0xff}));
  EXPECT_EQ(page[5], 0xff);
  EXPECT_THROW(apply({0, 0x80, 0x10}), FormatError) << "wrong page size";
  EXPECT_THROW(apply({0, 0x80, 0x20, 0xff, 0x1f, 2, 1, 1}), FormatError) << "run past the page";
  EXPECT_THROW(apply({0, 0x80, 0x20, 0, 0}), FormatError) << "empty run";
  EXPECT_THROW(apply({0, 0x80, 0x20, 0, 4, 1}), FormatError) << "truncated run";
  EXPECT_THROW(apply({0, 0x80}), FormatError) << "truncated size";
}

TEST(Events, DecodeIntoReusedEventLeavesNothingOfThePreviousRecord) {
  // Every ordered pair, including a record followed by a smaller one of the
  // same type (longer blob, more pages, a detail string) whose buffers are
  // reused: the result must equal a fresh decode.
  auto events = one_of_each();
  for (const auto& first : events) {
    for (const auto& second : events) {
      Event reused;
      decode_event_into(encode_event(first), reused);
      ASSERT_EQ(reused, first);
      decode_event_into(encode_event(second), reused);
      EXPECT_EQ(reused, second) << event_type_name(event_type(first)) << " then "
                                << event_type_name(event_type(second));
    }
  }
}

TEST(Events, CheckAgreesWithDecodeOnEveryPrefixAndReportsTypeAndPosition) {
  std::mt19937_64 rng(9);
  for (const auto& event : one_of_each()) {
    auto bytes = encode_event(event);
    Position pos;
    EXPECT_EQ(check_event(bytes, pos), event_type(event));
    EXPECT_EQ(pos, event_position(event));
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_THROW(check_event(longer, pos), FormatError);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      if (is_whole_without_tail(event, bytes, cut)) continue;
      EXPECT_THROW(check_event(std::span(bytes).first(cut), pos), FormatError) << cut;
    }
    // Random single-byte damage: check_event must throw exactly when decode does.
    for (int trial = 0; trial < 200; ++trial) {
      auto damaged = bytes;
      damaged[rng() % damaged.size()] = static_cast<uint8_t>(rng());
      bool decode_throws = false, check_throws = false;
      try {
        decode_event(damaged);
      } catch (const FormatError&) {
        decode_throws = true;
      }
      try {
        check_event(damaged, pos);
      } catch (const FormatError&) {
        check_throws = true;
      }
      EXPECT_EQ(check_throws, decode_throws) << event_type_name(event_type(event));
    }
  }
}
