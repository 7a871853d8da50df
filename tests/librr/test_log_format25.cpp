// Log format 2.5: compact chunk headers (varint fields, the last position as
// a delta from the first, a MAC field only in MAC'd logs). Every other check
// of the chunk header (each byte changed, each truncation, a forged chain)
// runs on the current format in test_log_corruption.cpp.
#include <gtest/gtest.h>

#include "../../librr/src/log_format.h"
#include "test_log_util.h"

using namespace logtest;

// An idle guest seals a chunk every 10 s: at 168 bytes the fixed header was a
// third of its log. Compact headers of small chunks take ~70 bytes unkeyed,
// 32 more with the MAC, and the log reads back the same in every mode.
TEST(LogFormat25, ChunkHeadersAreCompactInEveryMode) {
  TempDir dir;
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    const auto path = dir / (std::string(mode_name(mode)) + ".log");
    const std::vector<Event> events = write_log(path, mode, 300, true, 512);
    const auto file = read_file(path);
    const auto spans = chunk_spans(file);
    ASSERT_GT(spans.size(), 5u);
    const size_t mac_bytes = mode == Mode::plain ? 0 : sizeof(Digest);
    for (const auto& span : spans) {
      EXPECT_GE(span.header_size, logfmt::kCompactChunkHeaderMinSize + mac_bytes);
      EXPECT_LE(span.header_size, 80u + mac_bytes);
      const auto h = chunk_header_at(file, span);
      EXPECT_EQ(h.header_size, span.header_size);
      EXPECT_EQ(span.offset + span.header_size + h.stored_length, span.offset + span.size);
    }
    LogReader reader(path, reader_options(mode));
    EXPECT_GE(reader.info().version_minor, 5);
    EXPECT_TRUE(reader.verify().ok);
    EXPECT_EQ(read_all(reader), events);
  }
}

// The header's integers round-trip at their extremes (64-bit sequence and
// positions, 32-bit lengths), and a header is refused when its size byte
// disagrees with its fields or its checksum with its bytes.
TEST(LogFormat25, CompactHeaderRoundTripsAndRefusesAWrongSize) {
  for (bool mac : {false, true}) {
    SCOPED_TRACE(mac ? "mac" : "plain");
    const logfmt::ChunkLayout layout{true, mac};
    logfmt::ChunkHeader h;
    h.flags = logfmt::kChunkFlagFinal;
    h.sequence = UINT64_MAX - 1;
    h.first_record_index = 1ull << 40;
    h.record_count = 3;
    h.raw_length = logfmt::kMaxRawLength;
    h.stored_length = 77;
    h.first = {UINT64_MAX - 5, 2, 9};
    h.last = {UINT64_MAX, 0, 4};
    h.payload_checksum = 0x0123456789abcdefull;
    h.prev_hash.fill(0x5a);
    if (mac) h.mac.fill(0xa5);
    const std::vector<uint8_t> bytes = h.encode(layout);
    EXPECT_EQ(bytes.size(), h.header_size);
    EXPECT_EQ(bytes[4], bytes.size());
    EXPECT_LE(bytes.size(), layout.max_size());

    // Decoding reads past the header's end without taking those bytes.
    std::vector<uint8_t> longer = bytes;
    longer.resize(layout.max_size(), 0xee);
    const auto back = logfmt::ChunkHeader::decode(longer, layout);
    EXPECT_EQ(back.header_size, bytes.size());
    EXPECT_EQ(back.sequence, h.sequence);
    EXPECT_EQ(back.first_record_index, h.first_record_index);
    EXPECT_EQ(back.raw_length, h.raw_length);
    EXPECT_EQ(back.stored_length, h.stored_length);
    EXPECT_EQ(back.first, h.first);
    EXPECT_EQ(back.last, h.last);
    EXPECT_EQ(back.payload_checksum, h.payload_checksum);
    EXPECT_TRUE(digests_equal(back.prev_hash, h.prev_hash));
    EXPECT_TRUE(digests_equal(back.mac, h.mac));
    EXPECT_TRUE(back.final());

    // One byte more in the size, the checksum recomputed: the fields end
    // before the declared tail does.
    std::vector<uint8_t> grown(bytes.begin(), bytes.end() - 8);
    grown.insert(grown.end() - 8, 0);
    grown[4] = static_cast<uint8_t>(grown.size() + 8);
    ByteWriter checksum;
    checksum.u64(checksum64(grown));
    grown.insert(grown.end(), checksum.data().begin(), checksum.data().end());
    try {
      logfmt::ChunkHeader::decode(grown, layout);
      ADD_FAILURE() << "a header with a wrong size byte was accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("size byte disagrees"), std::string::npos) << e.what();
    }
    // A header cut short of its declared size.
    EXPECT_THROW(logfmt::ChunkHeader::decode(std::span(bytes).first(bytes.size() - 1), layout),
                 FormatError);
  }
}

// The reader's fuzz corpus holds a 2.5 log of several chunks (regenerated
// with RR_WRITE_FUZZ_SEEDS=1), so the fuzzer starts from compact headers.
TEST(LogFormat25, FuzzSeedHasCompactHeaders) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/compact-headers-v2.5.log";
  std::vector<Event> events;
  for (uint64_t i = 0; i < 60; ++i) events.push_back(make_event(i));
  events.push_back(EndOfRecording{{16, 0, 0}, "done", 0});
  expect_fuzz_seed(seed, events, 256, 5);
  const auto spans = chunk_spans(read_file(seed));
  EXPECT_GT(spans.size(), 2u);
  for (const auto& span : spans) EXPECT_LT(span.header_size, logfmt::kChunkHeaderSize);
}
