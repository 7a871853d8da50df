// The log byte report (where a log's bytes go, per record kind) and log
// format 2.1 (previous_position memory deltas).
#include <gtest/gtest.h>

#include <algorithm>

#include "../../librr/src/log_format.h"
#include "librr/log_byte_report.h"
#include "librr/page_delta.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

// A recording-like stream: per "tick" an async position (a 600-byte vCPU state
// of which a few bytes change, a one-page delta), a clock sample and an
// interrupt; serial input now and then.
std::vector<Event> recording_like(uint64_t ticks) {
  std::vector<Event> events;
  std::vector<uint8_t> state(600, 0x33), shadow(4096, 0), current(4096, 0);
  for (uint64_t t = 1; t <= ticks; ++t) {
    state[10] = static_cast<uint8_t>(t);
    state[300] = static_cast<uint8_t>(t * 7);
    current[t % 4096] = static_cast<uint8_t>(t | 1);
    PageChange change{42, shadow, current};
    const Position at{t * 3, 1, 0};
    events.push_back(
        AsyncPosition{at, 1, state,
                      make_memory_delta(at.landmark, {&change, 1}, UnchangedPages::kKeep,
                                        DeltaBase::previous_position)});
    if (t % 2 == 0)
      std::get<AsyncPosition>(events.back()).kernel_entries =
          CodeArrivals{{0x1000, 0x1040}, static_cast<uint32_t>(t)};
    const uint64_t now_ns = t * 10'000'123;
    events.push_back(Input{at,
                           "clock",
                           {reinterpret_cast<const uint8_t*>(&now_ns),
                            reinterpret_cast<const uint8_t*>(&now_ns) + 8}});
    events.push_back(InterruptDelivery{at, 0x20, 0});
    if (t % 10 == 0) events.push_back(Input{{t * 3 + 1, 0, 0}, "serial0", {'x', '\n'}});
  }
  events.push_back(EndOfRecording{{ticks * 3 + 2, 0, 0}, "done", 0});
  return events;
}

}  // namespace

TEST(LogByteReport, AccountsForEveryRecordAndEveryStoredByte) {
  TempDir dir;
  const auto path = dir / "rec.log";
  const std::vector<Event> events = recording_like(200);
  {
    LogWriter writer(path, writer_options(Mode::mac, 16 * 1024));
    for (const Event& event : events) writer.append(event);
    writer.close();
  }
  const LogByteReport report = measure_log_bytes(path, test_key());

  // The raw total is the chunks' compact payload, byte for byte, and the
  // stored payload plus headers is the file.
  auto file = read_file(path);
  uint64_t raw = 0, stored = 0, chunks = 0;
  for (const auto& span : chunk_spans(file)) {
    const auto h = chunk_header_at(file, span);
    raw += h.raw_length;
    stored += h.stored_length;
    ++chunks;
  }
  EXPECT_GT(chunks, 2u);
  EXPECT_EQ(report.chunks, chunks);
  EXPECT_EQ(report.raw_bytes, raw);
  EXPECT_EQ(report.stored_payload_bytes, stored);
  EXPECT_EQ(report.file_bytes, file.size());

  const LogByteShare* async = share_of(report, "AsyncPosition");
  const LogByteShare* vcpu = share_of(report, "AsyncPosition.vcpu_state");
  const LogByteShare* memory = share_of(report, "AsyncPosition.memory");
  const LogByteShare* clock = share_of(report, "Input:clock");
  const LogByteShare* serial = share_of(report, "Input:serial0");
  const LogByteShare* irq = share_of(report, "InterruptDelivery");
  ASSERT_TRUE(async && vcpu && memory && clock && serial && irq) << report.to_string();
  EXPECT_EQ(async->records, 200u);
  EXPECT_EQ(clock->records, 200u);
  EXPECT_EQ(serial->records, 20u);
  EXPECT_EQ(irq->records, 200u);
  EXPECT_EQ(vcpu->raw_bytes, 200u * (4 + 600));
  const LogByteShare* entries = share_of(report, "AsyncPosition.kernel_entries");
  ASSERT_TRUE(entries) << report.to_string();
  EXPECT_EQ(entries->raw_bytes, 100u * (1 + 2 * 8 + 4));
  // The repetitive vCPU states compress to a few bytes each; the report
  // prints a line per kind.
  EXPECT_LT(vcpu->compressed_alone, vcpu->raw_bytes / 20);
  const std::string text = report.to_string();
  EXPECT_NE(text.find("AsyncPosition.vcpu_state"), std::string::npos) << text;
  EXPECT_NE(text.find("Input:clock"), std::string::npos) << text;
  // Every page of every delta, by the form it is coded in: here one sparse page per stop.
  ASSERT_EQ(report.page_forms.size(), 1u) << text;
  EXPECT_EQ(report.page_forms[0].form, "sparse XOR");
  EXPECT_EQ(report.page_forms[0].pages, 200u);
  uint64_t page_bytes = 0;
  for (const Event& event : events)
    if (const auto* stop = std::get_if<AsyncPosition>(&event))
      page_bytes += std::get<MemoryDelta>(stop->memory).pages[0].compressed_xor.size();
  EXPECT_EQ(report.page_forms[0].bytes, page_bytes);
  EXPECT_NE(text.find("sparse XOR"), std::string::npos) << text;
}

TEST(LogFormat21, WrittenAsMinorOneAndPreviousPositionDeltasReadBack) {
  TempDir dir;
  const auto path = dir / "v21.log";
  const std::vector<Event> events = recording_like(50);
  write_events(path, events);
  LogReader reader(path, reader_options(Mode::plain));
  EXPECT_EQ(reader.info().version_major, 2);
  EXPECT_EQ(reader.info().version_minor, logfmt::kVersionMinor);
  EXPECT_TRUE(reader.verify().ok);
  const std::vector<Event> back = read_all(reader);
  EXPECT_EQ(back, events);
  const auto& delta = std::get<MemoryDelta>(std::get<AsyncPosition>(back[0]).memory);
  EXPECT_EQ(delta.base, DeltaBase::previous_position);
  EXPECT_TRUE(logfmt::is_readable_version(2, 0)) << "logs written before 2.1 stay readable";
  EXPECT_TRUE(logfmt::is_readable_version(2, 1));
  EXPECT_TRUE(logfmt::is_readable_version(2, 2));
  EXPECT_TRUE(logfmt::is_readable_version(2, 3));
  EXPECT_TRUE(logfmt::is_readable_version(2, 4));
  EXPECT_TRUE(logfmt::is_readable_version(2, 5));
  EXPECT_TRUE(logfmt::is_readable_version(2, 6));
  EXPECT_TRUE(logfmt::is_readable_version(2, 7));
  EXPECT_TRUE(logfmt::is_readable_version(2, 8));
  EXPECT_TRUE(logfmt::is_readable_version(2, 9));
  EXPECT_TRUE(logfmt::is_readable_version(2, 10));
  EXPECT_TRUE(logfmt::is_readable_version(2, 11));
  EXPECT_TRUE(logfmt::is_readable_version(2, 12));
  EXPECT_TRUE(logfmt::is_readable_version(2, 13));
  EXPECT_FALSE(logfmt::is_readable_version(2, 14));
}

TEST(LogFormat21, Format1LogsAreStillWrittenAsOneDotZero) {
  TempDir dir;
  const auto path = dir / "v1.log";
  auto options = writer_options(Mode::plain);
  options.format_version = 1;
  {
    LogWriter writer(path, options);
    writer.append(EndOfRecording{{1, 0, 0}, "v1", 0});
    writer.close();
  }
  LogReader reader(path, reader_options(Mode::plain));
  EXPECT_EQ(reader.info().version_major, 1);
  EXPECT_EQ(reader.info().version_minor, 0);
}

TEST(Events, UnknownMemoryKindIsRefused) {
  auto bytes = encode_event(AsyncPosition{{1, 1, 0}, 1, {}, MemoryDelta{1, {}}});
  // tag, position (24), format (4), state length (4), then the memory kind.
  ASSERT_EQ(bytes[33], 1);
  bytes[33] = 2;
  EXPECT_EQ(std::get<MemoryDelta>(std::get<AsyncPosition>(decode_event(bytes)).memory).base,
            DeltaBase::previous_position);
  // Kind 3 (2.3) reads the same bytes as a pages digest of no pages.
  bytes[33] = 3;
  EXPECT_EQ(std::get<AsyncPosition>(decode_event(bytes)).memory,
            (decltype(AsyncPosition::memory){PagesDigest{1, {}}}));
  bytes[33] = 4;
  EXPECT_THROW(decode_event(bytes), FormatError);
}
