// Log format 2 (compact, delta-coded record positions) and the chunk sealing
// policy: format-1 logs stay readable, format 2 reads back identically and is
// smaller, hostile compact payloads are refused, quiet logs seal rarely.
#include <gtest/gtest.h>

#include <thread>

#include "../../librr/src/log_compact.h"
#include "../../librr/src/log_format.h"
#include "librr/compress.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

// Sum of the chunk headers' raw (decompressed payload) lengths and stored bytes.
struct PayloadSizes {
  uint64_t raw = 0, stored = 0;
};
PayloadSizes payload_sizes(const std::filesystem::path& path) {
  auto file = read_file(path);
  PayloadSizes sizes;
  for (const auto& span : chunk_spans(file)) {
    auto h = chunk_header_at(file, span);
    sizes.raw += h.raw_length;
    sizes.stored += h.stored_length;
  }
  return sizes;
}

std::vector<uint8_t> frame_all(const std::vector<Event>& events) {
  std::vector<uint8_t> framed;
  for (const auto& e : events) {
    auto record = encode_event(e);
    uint32_t len = static_cast<uint32_t>(record.size());
    framed.insert(framed.end(), reinterpret_cast<uint8_t*>(&len),
                  reinterpret_cast<uint8_t*>(&len) + 4);
    framed.insert(framed.end(), record.begin(), record.end());
  }
  return framed;
}

uint16_t file_version(const std::filesystem::path& path) {
  auto file = read_file(path);
  return ByteReader(std::span(file).subspan(8, 2)).u16();
}

}  // namespace

TEST(LogFormat2, WrittenByDefaultAndReadBackIdenticallyInEveryMode) {
  TempDir dir;
  for (Mode m : {Mode::plain, Mode::mac, Mode::encrypted}) {
    auto path = dir / (std::string(mode_name(m)) + ".log");
    auto events = write_log(path, m, 500);
    EXPECT_EQ(file_version(path), 2);
    LogReader reader(path, reader_options(m));
    EXPECT_EQ(reader.info().version_major, 2);
    auto report = reader.verify();
    EXPECT_TRUE(report.ok) << report.to_string();
    EXPECT_EQ(read_all(reader), events);
    // Seeks land on the same records as in format 1.
    ASSERT_TRUE(reader.seek_to_record(321));
    EXPECT_EQ(*reader.next(), events[321]);
    ASSERT_TRUE(reader.seek_to_position(event_position(events[401])));
    EXPECT_EQ(event_position(*reader.next()), event_position(events[401]));
  }
}

TEST(LogFormat2, Version1LogsAreStillRead) {
  TempDir dir;
  for (Mode m : {Mode::plain, Mode::mac, Mode::encrypted}) {
    auto path = dir / (std::string(mode_name(m)) + ".v1.log");
    std::vector<Event> events;
    auto options = writer_options(m);
    options.format_version = 1;
    {
      LogWriter w(path, options);
      for (uint64_t i = 0; i < 300; ++i) {
        events.push_back(make_event(i));
        w.append(events.back());
      }
      events.push_back(EndOfRecording{{76, 0, 0}, "v1", 0});
      w.append(events.back());
      w.close();
    }
    EXPECT_EQ(file_version(path), 1);
    LogReader reader(path, reader_options(m));
    EXPECT_EQ(reader.info().version_major, 1);
    auto report = reader.verify();
    EXPECT_TRUE(report.ok) << report.to_string();
    EXPECT_EQ(read_all(reader), events);
  }
}

TEST(LogFormat2, UnknownVersionsAreRefused) {
  TempDir dir;
  auto options = writer_options(Mode::plain);
  options.format_version = 3;
  EXPECT_THROW(LogWriter(dir / "v3.log", options), Error);
  options.format_version = 0;
  EXPECT_THROW(LogWriter(dir / "v0.log", options), Error);
  EXPECT_FALSE(logfmt::is_readable_version(1, 1));
  EXPECT_FALSE(logfmt::is_readable_version(3, 0));
  EXPECT_TRUE(logfmt::is_readable_version(1, 0));
  EXPECT_TRUE(logfmt::is_readable_version(2, 0));
}

// An idle guest's stream: an interrupt every few landmarks. Format 2 stores
// each position in ~3 bytes instead of 24, and the regular pattern compresses.
TEST(LogFormat2, PositionsCostAFractionOfFormat1) {
  TempDir dir;
  PayloadSizes sizes[2];
  for (uint16_t version : {1, 2}) {
    auto path = dir / ("idle.v" + std::to_string(version) + ".log");
    auto options = writer_options(Mode::plain, 64 * 1024);
    options.format_version = version;
    LogWriter w(path, options);
    for (uint64_t tick = 1; tick <= 20000; ++tick)
      w.append(InterruptDelivery{{tick * 4 + (tick % 3 == 0), 0, 0}, 0x20, 0});
    w.append(EndOfRecording{{90000, 0, 0}, "done", 0});
    w.close();
    sizes[version - 1] = payload_sizes(path);
  }
  EXPECT_LT(sizes[1].raw * 3, sizes[0].raw) << "compact records";
  EXPECT_LT(sizes[1].stored * 2, sizes[0].stored) << "compressed";
}

TEST(LogCompact, RoundTripsEveryKindOfPositionStep) {
  std::vector<Event> events = {
      InterruptDelivery{{5, 0, 0}, 0x20, 0},
      InterruptDelivery{{5, 0, 0}, 0x21, 1},                // same position
      Input{{5, 0, 7}, "clock", {1, 2, 3, 4, 5, 6, 7, 8}},  // steps only
      Input{{5, 2, 1}, "serial0", {'x'}},                   // async_seq up, steps restart
      Input{{5, 2, 9}, "serial0", {}},                      // steps up within a stop
      StateDigest{{1000, 0, 0}, {}, {}, std::string("detail")},
      EndOfRecording{{UINT64_MAX, UINT64_MAX, UINT64_MAX}, "max", -1},
  };
  const auto framed = frame_all(events);
  std::vector<uint8_t> compact;
  logcompact::compact_records(framed, event_position(events.front()), compact);
  EXPECT_LT(compact.size() + 6 * 20, framed.size());
  std::vector<uint8_t> expanded;
  logcompact::expand_records(compact, event_position(events.front()), logfmt::kMaxRawLength,
                             expanded);
  EXPECT_EQ(expanded, framed);
}

TEST(LogCompact, HostilePayloadsAreFormatErrors) {
  const Position first{10, 0, 0};
  std::vector<uint8_t> out;
  auto expand = [&](std::vector<uint8_t> compact, size_t max = logfmt::kMaxRawLength) {
    logcompact::expand_records(compact, first, max, out);
  };
  // rest_length 0, tag 1, position delta (0, 0, 0): a valid (if short) record.
  EXPECT_NO_THROW(expand({0, 1, 0, 0, 0}));
  EXPECT_EQ(out.size(), 4u + 25u);
  EXPECT_THROW(expand({0, 1, 0, 0}), FormatError) << "ends inside the position";
  EXPECT_THROW(expand({0x80}), FormatError) << "ends inside the length";
  EXPECT_THROW(expand({5, 1, 0, 0, 0, 'a'}), FormatError) << "body shorter than declared";
  // An 11-byte varint, and a 10-byte one with more than 64 bits.
  EXPECT_THROW(
      expand({0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0}),
      FormatError);
  EXPECT_THROW(expand({0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0}),
               FormatError);
  // A landmark delta that overflows first.landmark + delta.
  EXPECT_THROW(expand({0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0}),
               FormatError);
  // A record length that would expand beyond the cap.
  EXPECT_THROW(expand({0, 1, 0, 0, 0}, 16), FormatError);
  EXPECT_THROW(expand({0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0, 0}), FormatError)
      << "record length above the record limit";
}

// A compact payload whose first record does not sit at the chunk header's
// first position is a bad_record, like any other disagreement.
TEST(LogFormat2, FirstRecordMustSitAtTheHeaderPosition) {
  TempDir dir;
  auto path = dir / "shifted.log";
  write_log(path, Mode::plain, 40, true, 1 << 20);
  auto file = read_file(path);
  auto spans = chunk_spans(file);
  ASSERT_EQ(spans.size(), 1u);
  auto h = chunk_header_at(file, spans[0]);
  auto compact = zstd_decompress(
      std::span(file).subspan(spans[0].offset + spans[0].header_size, h.stored_length),
      h.raw_length);
  compact[2] = 1;  // the first record's landmark delta: 0 -> 1
  auto payload = zstd_compress(compact);
  h.stored_length = static_cast<uint32_t>(payload.size());
  h.payload_checksum = checksum64(payload);
  auto header = h.encode(chunk_layout_of(file));
  std::vector<uint8_t> out(file.begin(),
                           file.begin() + static_cast<std::ptrdiff_t>(spans[0].offset));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  write_file(path, out);
  LogReader reader(path, reader_options(Mode::plain, false));
  auto report = reader.verify();
  ASSERT_TRUE(report.problem);
  EXPECT_EQ(report.problem->kind, LogProblemKind::bad_record) << report.to_string();
}

TEST(LogWriterSealing, AQuietLogIsSealedByMaxAgeAndABusyOneByInterval) {
  TempDir dir;
  auto options = writer_options(Mode::plain, 1 << 20);
  options.chunk_interval = std::chrono::milliseconds(10);
  options.chunk_min_bytes = 4096;
  options.chunk_max_age = std::chrono::milliseconds(400);
  LogWriter w(dir / "seal.log", options);
  const auto start = std::chrono::steady_clock::now();
  w.append(Input{{1, 0, 0}, "serial0", {'x'}});  // far below chunk_min_bytes
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_EQ(w.chunks_written(), 0u) << "a small chunk must wait for chunk_max_age";
  while (w.chunks_written() == 0 &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(w.chunks_written(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));

  // Crossing chunk_min_bytes after chunk_interval seals at once (the writer
  // thread is woken, it does not sleep until chunk_max_age).
  w.append(Input{{2, 0, 0}, "serial0", {'y'}});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto crossed = std::chrono::steady_clock::now();
  w.append(Input{{3, 0, 0}, "net0", std::vector<uint8_t>(5000, 7)});
  while (w.chunks_written() == 1 &&
         std::chrono::steady_clock::now() - crossed < std::chrono::seconds(10))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(w.chunks_written(), 2u);
  EXPECT_LT(std::chrono::steady_clock::now() - crossed, std::chrono::milliseconds(300));
}
