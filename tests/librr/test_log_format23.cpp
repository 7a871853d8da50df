// Log format 2.3: AsyncPosition memory kind 3 (PagesDigest) in real log
// files, the writer's refusal to put records into a format too old for them,
// the byte report's accounting of kind 3, and the fuzz seed holding it.
#include <gtest/gtest.h>

#include <cstdlib>

#include "../../librr/src/log_format.h"
#include "librr/log_byte_report.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

// A stream like one where replay searches every stop: per tick an interrupt
// and a pages-digest stop listing 1 + tick % 3 pages, every other one with a
// kernel-entry count; a memory-delta stop now and then.
std::vector<Event> searched_stops(uint64_t ticks) {
  std::vector<Event> events;
  std::vector<uint8_t> state(96, 0x21);
  for (uint64_t t = 1; t <= ticks; ++t) {
    state[5] = static_cast<uint8_t>(t);
    const Position at{t * 2, 1, 0};
    events.emplace_back(std::in_place_type<InterruptDelivery>, InterruptDelivery{at, 0x20, 0});
    PagesDigest pages{t * 0x9e3779b97f4a7c15ull, {}};
    for (uint64_t k = 0; k <= t % 3; ++k) pages.gfns.push_back(0x100 + k * 3 + t % 2);
    events.push_back(AsyncPosition{at, 1, state, std::move(pages)});
    if (t % 2 == 0)
      std::get<AsyncPosition>(events.back()).kernel_entries =
          CodeArrivals{{0xffffffff81000000, 0xffffffff81000040}, static_cast<uint32_t>(t)};
    if (t % 5 == 0)
      events.push_back(AsyncPosition{
          {t * 2, 2, 0}, 1, state, MemoryDelta{t * 2, {}, DeltaBase::previous_position}});
  }
  events.push_back(EndOfRecording{{ticks * 2 + 1, 0, 0}, "done", 0});
  return events;
}

std::vector<Event> write_and_read(const std::filesystem::path& path,
                                  const std::vector<Event>& events, Mode mode) {
  {
    LogWriter writer(path, writer_options(mode, 2048));
    for (const Event& event : events) writer.append(event);
    writer.close();
  }
  LogReader reader(path, reader_options(mode));
  EXPECT_EQ(reader.info().version_major, 2);
  EXPECT_EQ(reader.info().version_minor, logfmt::kVersionMinor);
  const auto report = reader.verify();
  EXPECT_TRUE(report.ok) << report.to_string();
  return read_all(reader);
}

// Appending `event` throws an Error whose message names `needed`.
void expect_refused(LogWriter& writer, const Event& event, const std::string& needed) {
  try {
    writer.append(event);
    ADD_FAILURE() << "a record needing format " << needed << " was written into format 1.0";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("needs log format " + needed), std::string::npos) << what;
    EXPECT_NE(what.find("written as format 1.0"), std::string::npos) << what;
  }
}

}  // namespace

TEST(LogFormat23, PagesDigestsSurviveTheLogInEveryMode) {
  TempDir dir;
  const std::vector<Event> events = searched_stops(120);
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    EXPECT_EQ(write_and_read(dir / (std::string(mode_name(mode)) + ".log"), events, mode), events);
  }
}

TEST(LogFormat23, OlderFormatWriterRefusesRecordsItCannotHold) {
  TempDir dir;
  const auto path = dir / "v1.log";
  auto options = writer_options(Mode::plain);
  options.format_version = 1;
  const std::vector<Event> kept = {
      AsyncPosition{{1, 1, 0}, 1, {1, 2}, MemoryDigest{{9}}},
      AsyncPosition{{2, 1, 0}, 1, {3}, MemoryDelta{2, {}, DeltaBase::shadow}},
      EndOfRecording{{3, 0, 0}, "v1", 0},
  };
  {
    LogWriter writer(path, options);
    writer.append(kept[0]);
    expect_refused(writer, AsyncPosition{{1, 2, 0}, 1, {}, PagesDigest{7, {1, 2}}}, "2.3");
    expect_refused(
        writer, AsyncPosition{{1, 2, 0}, 1, {}, MemoryDigest{}, CodeArrivals{{0x1000}, 1}}, "2.2");
    expect_refused(
        writer, AsyncPosition{{1, 2, 0}, 1, {}, MemoryDelta{1, {}, DeltaBase::previous_position}},
        "2.1");
    // A refused record leaves no trace: the log goes on.
    writer.append(kept[1]);
    writer.append(kept[2]);
    writer.close();
  }
  LogReader reader(path, reader_options(Mode::plain));
  EXPECT_EQ(reader.info().version_major, 1);
  EXPECT_EQ(reader.info().version_minor, 0);
  EXPECT_TRUE(reader.verify().ok);
  EXPECT_EQ(read_all(reader), kept);
}

TEST(LogFormat23, ByteReportCountsPagesDigestsAsAsyncMemory) {
  TempDir dir;
  const auto path = dir / "rec.log";
  const std::vector<Event> events = searched_stops(90);
  ASSERT_EQ(write_and_read(path, events, Mode::plain), events);
  uint64_t memory_bytes = 0, entry_bytes = 0;
  for (const Event& event : events) {
    const auto* async = std::get_if<AsyncPosition>(&event);
    if (!async) continue;
    if (const auto* pages = std::get_if<PagesDigest>(&async->memory))
      memory_bytes += 1 + 8 + 4 + 8 * pages->gfns.size();  // kind, xxh3, count, gfns
    else
      memory_bytes += 1 + 8 + 4;  // kind, reset_landmark, count (no pages)
    if (async->kernel_entries) entry_bytes += 1 + 8 * 2 + 4;
  }
  const LogByteReport report = measure_log_bytes(path, std::nullopt);
  const LogByteShare* memory = share_of(report, "AsyncPosition.memory");
  const LogByteShare* entries = share_of(report, "AsyncPosition.kernel_entries");
  ASSERT_TRUE(memory && entries) << report.to_string();
  EXPECT_EQ(memory->records, 90u + 18u);
  EXPECT_EQ(memory->raw_bytes, memory_bytes);
  EXPECT_EQ(entries->raw_bytes, entry_bytes);
}

// fuzz/seeds/librr_log_reader/pages-digest-v2.3.log is this stream (plain),
// so the log fuzzer starts from kind-3 records with and without the tail.
// RR_WRITE_FUZZ_SEEDS=1 rewrites it (after a change to the stream or format).
TEST(LogFormat23, FuzzSeedHoldsPagesDigests) {
  const std::filesystem::path seed =
      std::filesystem::path(RR_SOURCE_DIR) / "fuzz/seeds/librr_log_reader/pages-digest-v2.3.log";
  const std::vector<Event> events = searched_stops(12);
  expect_fuzz_seed(seed, events, 512, 3);
}
