// GatewayLogReader: frames read back by digest from a real FrameLog directory
// (closed segments, the open .part segment after a flush, several segments),
// and refusals when the index points at something else.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "frame_log.h"
#include "librr/gateway_log_reader.h"
#include "test_support.h"

using namespace gateway;
using namespace librr;
using namespace gateway_test;

namespace {

constexpr uint64_t kStart = 1'700'000'000'000'000'000ull;

std::unique_ptr<FrameLog> make_log(const std::filesystem::path& dir, uint64_t segment_bytes) {
  FrameLogSettings settings;
  settings.directory = dir;
  settings.segment_max_bytes = segment_bytes;
  settings.segment_max_seconds = 0;
  settings.chunk_bytes = 4096;
  return std::make_unique<FrameLog>(
      settings, std::vector<LoggedInterface>{{"lan0", 65535}},
      [](uint64_t now) {
        return std::vector<pcapng::InterfaceStatistics>{{0, now, kStart, 0, 0}};
      },
      kStart);
}

FrameToLog entry(const std::vector<uint8_t>& bytes, uint64_t i) {
  return FrameToLog{
      0,
      kStart + i,
      bytes,
      static_cast<uint32_t>(bytes.size()),
      pcapng::epb_flags(pcapng::FlagDirection::kOutbound, pcapng::FlagReception::kUnicast),
      0,
      Direction::kIncoming};
}

std::vector<std::vector<uint8_t>> some_frames(size_t count) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < count; ++i)
    frames.push_back(ipv4_udp_frame({192, 0, 2, 1}, {10, 0, 0, 2}, random_bytes(20 + i * 7, i)));
  return frames;
}

}  // namespace

TEST(GatewayLogReader, FindsEveryFrameAcrossSegments) {
  TempDir dir;
  auto frames = some_frames(200);
  {
    auto log = make_log(dir.path(), 16 << 10);  // small segments: several files
    for (size_t i = 0; i < frames.size(); ++i) log->record(entry(frames[i], i));
    ASSERT_GT(log->current_segment(), 2u);
    log->close(kStart + 1'000'000);
  }
  GatewayLogReader reader(dir.path());
  for (size_t i = 0; i < frames.size(); i += 7) {
    auto found = reader.find(librr::hash256(frames[i]));
    ASSERT_TRUE(found) << "frame " << i;
    EXPECT_EQ(*found, frames[i]);
  }
  EXPECT_FALSE(reader.find(librr::hash256(std::vector<uint8_t>{1, 2, 3})));
}

TEST(GatewayLogReader, ReadsTheSegmentStillBeingWritten) {
  TempDir dir;
  auto frames = some_frames(20);
  auto log = make_log(dir.path(), 64 << 20);
  for (size_t i = 0; i < frames.size(); ++i) log->record(entry(frames[i], i));
  log->flush();  // bytes and index rows on disk, segment still .part
  GatewayLogReader reader(dir.path());
  auto found = reader.find(librr::hash256(frames[13]));
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, frames[13]);
}

TEST(GatewayLogReader, RefusesAnIndexThatPointsElsewhere) {
  TempDir dir;
  auto frames = some_frames(10);
  {
    auto log = make_log(dir.path(), 64 << 20);
    for (size_t i = 0; i < frames.size(); ++i) log->record(entry(frames[i], i));
    log->close(kStart + 1'000'000);
  }
  // Point frame 3's row at frame 4's block: same table, wrong bytes.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "index.sqlite").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE frames SET pcapng_offset = (SELECT pcapng_offset FROM frames "
                         "WHERE ordinal = 4), captured_length = (SELECT captured_length FROM "
                         "frames WHERE ordinal = 4) WHERE ordinal = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  GatewayLogReader reader(dir.path());
  EXPECT_THROW(reader.find(librr::hash256(frames[3])), librr::FormatError);
  EXPECT_EQ(*reader.find(librr::hash256(frames[5])), frames[5]);
}

TEST(GatewayLogReader, NeedsAnIndex) {
  TempDir dir;
  EXPECT_THROW(GatewayLogReader reader(dir.path()), librr::Error);
}
