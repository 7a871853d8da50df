// Log format 2.7: clock samples in compact chunk payloads are stored as their
// difference from the chunk's previous sample, in microseconds when whole
// (librr/src/log_compact.h). Readers see the same Input records as before;
// logs of 2.6 and earlier are read without it.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "../../librr/src/log_compact.h"
#include "../../librr/src/log_format.h"
#include "librr/compress.h"
#include "librr/recorder.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

Input clock_sample(uint64_t landmark, uint64_t ns) {
  std::vector<uint8_t> data(8);
  std::memcpy(data.data(), &ns, 8);
  return Input{{landmark, 0, 0}, std::string(channels::kClock), std::move(data)};
}

// Samples a recorder logs (whole microseconds ~10 ms apart), and the cases
// the delta form must leave alone or get exactly right.
std::vector<Event> clock_events() {
  std::vector<Event> events;
  uint64_t landmark = 1, ns = 5'000'000'000;
  for (int i = 0; i < 200; ++i) {
    ns += 10'000'000 + (i * 7919 % 3000) * 1000;  // 10-13 ms, whole us
    events.push_back(clock_sample(landmark++, ns));
    if (i % 5 == 0) events.push_back(Input{{landmark++, 0, 0}, "serial0", {'x'}});
  }
  events.push_back(clock_sample(landmark++, ns + 123));     // nanoseconds
  events.push_back(clock_sample(landmark++, ns - 50'000));  // backwards: an ordinary record
  events.push_back(clock_sample(landmark++, ns));           // forwards again
  events.push_back(clock_sample(landmark++, UINT64_MAX));   // delta too large to shift
  events.push_back(clock_sample(landmark++, 0));            // backwards to zero
  events.push_back(Input{{landmark++, 0, 0}, std::string(channels::kClock), {1, 2, 3, 4}});
  events.push_back(clock_sample(landmark++, UINT64_MAX - UINT64_MAX % 1000));  // huge, in us
  events.push_back(EndOfRecording{{landmark, 0, 0}, "done", 0});
  return events;
}

std::vector<uint8_t> framed(const std::vector<Event>& events) {
  std::vector<uint8_t> out;
  for (const Event& event : events) {
    const std::vector<uint8_t> record = encode_event(event);
    const auto len = static_cast<uint32_t>(record.size());
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&len),
               reinterpret_cast<const uint8_t*>(&len) + sizeof len);
    out.insert(out.end(), record.begin(), record.end());
  }
  return out;
}

std::vector<uint8_t> compacted(const std::vector<Event>& events, bool clock_deltas) {
  std::vector<uint8_t> out;
  logcompact::compact_records(framed(events), event_position(events.front()), out, clock_deltas);
  return out;
}

std::vector<uint8_t> expanded(std::span<const uint8_t> compact, const Position& first,
                              bool clock_deltas) {
  std::vector<uint8_t> out;
  logcompact::expand_records(compact, first, logfmt::kMaxRawLength, out, clock_deltas);
  return out;
}

}  // namespace

TEST(LogFormat27, ClockSamplesRoundTripInEveryModeAcrossChunks) {
  const std::vector<Event> events = clock_events();
  TempDir dir;
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    const auto path = dir / (std::string(mode_name(mode)) + ".log");
    {
      LogWriter writer(path, writer_options(mode, 512));  // many chunks: each restarts the deltas
      for (const Event& event : events) writer.append(event);
      writer.close();
    }
    LogReader reader(path, reader_options(mode));
    EXPECT_GE(reader.info().version_minor, 7);
    EXPECT_GT(reader.chunk_index().size(), 3u);
    EXPECT_EQ(read_all(reader), events);
  }
}

TEST(LogFormat27, ClockSamplesTakeAFractionOfTheirBytes) {
  std::vector<Event> samples;
  for (uint64_t i = 0; i < 100; ++i)
    samples.push_back(clock_sample(i, 1'000'000'000 + i * 10'001'000));
  const size_t plain = compacted(samples, false).size();
  const size_t deltas = compacted(samples, true).size();
  EXPECT_LT(deltas * 3, plain) << plain << " -> " << deltas;
  EXPECT_EQ(expanded(compacted(samples, true), event_position(samples.front()), true),
            framed(samples));
}

// A 2.6 reader (or a 2.7 reader of a 2.6 log) does not know the delta form:
// the record keeps its compact-only tag, which record decoding refuses.
TEST(LogFormat27, DeltaRecordsAreUnknownToOlderPayloads) {
  const std::vector<Event> samples = {clock_sample(1, 1'000'000)};
  const std::vector<uint8_t> raw =
      expanded(compacted(samples, true), event_position(samples.front()), false);
  const uint32_t length = logfmt::record_length_at(raw, 0);
  try {
    decode_event(std::span(raw).subspan(logfmt::kRecordFrameSize, length));
    ADD_FAILURE() << "a delta-coded clock sample decoded without the 2.7 form";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown event record tag 67"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(expanded(compacted(samples, false), event_position(samples.front()), false),
            framed(samples));
}

TEST(LogFormat27, DamagedDeltaRecordsAreFormatErrors) {
  const Position first{1, 0, 0};
  const auto expect_refused = [&](std::vector<uint8_t> compact, const std::string& what) {
    try {
      expanded(compact, first, true);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  // rest length 2, tag 0x43, position delta (0, 0, 0), code 0x05, one byte too many
  expect_refused({2, 0x43, 0, 0, 0, 0x05, 0x00}, "bytes after its delta");
  // a microsecond code of 2^62 units: more nanoseconds than 64 bits hold
  expect_refused({10, 0x43, 0, 0, 0, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
                 "overflows 64 bits");
  // a nanosecond code of 2^63 - 1 three times: the sum overflows
  std::vector<uint8_t> twice;
  for (int i = 0; i < 3; ++i) {
    const std::vector<uint8_t> code = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    twice.insert(twice.end(), {static_cast<uint8_t>(code.size()), 0x43, 0, 0, 0});
    twice.insert(twice.end(), code.begin(), code.end());
  }
  expect_refused(twice, "clock overflows 64 bits");
}

// The reader's fuzz corpus holds a 2.7 log of clock samples (regenerated
// with RR_WRITE_FUZZ_SEEDS=1 --gtest_filter=LogFormat27.FuzzSeedHoldsClockDeltas).
TEST(LogFormat27, FuzzSeedHoldsClockDeltas) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/clock-deltas-v2.7.log";
  expect_fuzz_seed(seed, clock_events(), 1024, 7);
}

// Chained chunks (2.7): each chunk's zstd frame but every kKeyChunkInterval-th
// continues the previous chunk's payload. Seeks anywhere, in every mode, find
// the same records as a sequential read.
TEST(LogFormat27, SeeksIntoChainedChunksRebuildTheirPrefix) {
  TempDir dir;
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    const auto path = dir / (std::string(mode_name(mode)) + ".log");
    const std::vector<Event> events = write_log(path, mode, 3000, true, 1024);
    LogReader reader(path, reader_options(mode));
    ASSERT_GT(reader.chunk_index().size(), 3 * logfmt::kKeyChunkInterval);
    std::mt19937 rng(7);
    for (int i = 0; i < 300; ++i) {
      const uint64_t index = rng() % events.size();
      ASSERT_TRUE(reader.seek_to_record(index)) << index;
      const auto event = reader.next();
      ASSERT_TRUE(event) << index;
      EXPECT_EQ(*event, events[index]) << index;
    }
    ASSERT_TRUE(reader.seek_to_record(0));
    EXPECT_EQ(read_all(reader), events);
  }
}

// The chaining is what makes the stream smaller: the same chunk payloads
// compressed one by one take more bytes.
TEST(LogFormat27, ChainedChunksTakeFewerBytesThanStandaloneOnes) {
  TempDir dir;
  const auto path = dir / "plain.log";
  write_log(path, Mode::plain, 3000, true, 1024);
  const auto file = read_file(path);
  uint64_t chained = 0, standalone = 0;
  std::vector<uint8_t> previous;
  const auto spans = chunk_spans(file);
  for (size_t k = 0; k < spans.size(); ++k) {
    const auto h = chunk_header_at(file, spans[k]);
    const auto payload = std::span(file).subspan(spans[k].offset + spans[k].header_size,
                                                 spans[k].size - spans[k].header_size);
    std::vector<uint8_t> compact(h.raw_length);
    zstd_decompress_into(payload, compact,
                         k % logfmt::kKeyChunkInterval ? std::span<const uint8_t>(previous)
                                                       : std::span<const uint8_t>());
    chained += payload.size();
    standalone += zstd_compress(compact, 1).size();
    previous = std::move(compact);
  }
  EXPECT_LT(chained, standalone) << spans.size() << " chunks";
}

// A damaged chunk (here: its payload checksum fails) also spoils the chunks
// whose frames continue it, up to the next key chunk, and a seek there says
// which chunk it needed; beyond the key chunk seeks work.
TEST(LogFormat27, ADamagedChunkSpoilsSeeksUpToTheNextKeyChunk) {
  TempDir dir;
  const auto path = dir / "plain.log";
  const std::vector<Event> events = write_log(path, Mode::plain, 3000, true, 1024);
  auto file = read_file(path);
  const auto spans = chunk_spans(file);
  ASSERT_GT(spans.size(), 2 * logfmt::kKeyChunkInterval);
  file[spans[2].offset + spans[2].header_size + 3] ^= 0x40;  // chunk 2's payload
  write_file(path, file);
  LogReader reader(path, reader_options(Mode::plain));
  const uint64_t in_chunk_5 = chunk_header_at(file, spans[5]).first_record_index;
  EXPECT_FALSE(reader.seek_to_record(in_chunk_5) && reader.next());
  ASSERT_TRUE(reader.problem());
  EXPECT_EQ(reader.problem()->kind, LogProblemKind::bad_checksum);
  EXPECT_NE(reader.problem()->message.find("chunk 2, whose payload"), std::string::npos)
      << reader.problem()->message;
  const uint64_t in_key_chunk =
      chunk_header_at(file, spans[logfmt::kKeyChunkInterval]).first_record_index;
  ASSERT_TRUE(reader.seek_to_record(in_key_chunk));
  const auto event = reader.next();
  ASSERT_TRUE(event);
  EXPECT_EQ(*event, events[in_key_chunk]);
}

// An attacker without the key edits a chunk and recomputes its checksums: a
// seek to a later chunk whose frame continues it must not decode the edit
// unnoticed (the prefix chunks are checked as if read in order).
TEST(LogFormat27, SeeksCheckTheChunksTheyDecompressFirst) {
  TempDir dir;
  const auto path = dir / "mac.log";
  write_log(path, Mode::mac, 3000, true, 1024);
  auto file = read_file(path);
  const auto spans = chunk_spans(file);
  ASSERT_GT(spans.size(), logfmt::kKeyChunkInterval);
  auto h = chunk_header_at(file, spans[2]);
  const size_t payload_at = spans[2].offset + spans[2].header_size;
  file[payload_at + 3] ^= 0x40;
  h.payload_checksum = checksum64(std::span(file).subspan(payload_at, h.stored_length));
  const auto header = h.encode(chunk_layout_of(file));
  ASSERT_EQ(header.size(), spans[2].header_size);
  std::copy(header.begin(), header.end(),
            file.begin() + static_cast<std::ptrdiff_t>(spans[2].offset));
  write_file(path, file);
  LogReader reader(path, reader_options(Mode::mac));
  const uint64_t in_chunk_5 = chunk_header_at(file, spans[5]).first_record_index;
  EXPECT_FALSE(reader.seek_to_record(in_chunk_5) && reader.next());
  ASSERT_TRUE(reader.problem());
  EXPECT_TRUE(reader.problem()->kind == LogProblemKind::bad_chain ||
              reader.problem()->kind == LogProblemKind::bad_mac)
      << reader.problem()->message;
  EXPECT_NE(reader.problem()->message.find("chunk 2, whose payload"), std::string::npos)
      << reader.problem()->message;
}
