// The .idx file is a cache: used when it matches the log, rebuilt (and
// rewritten) when it is missing, stale or corrupt.
#include <gtest/gtest.h>

#include "test_log_util.h"

using namespace logtest;

TEST(LogIndex, WriterIndexMatchesAScanAndIsLoaded) {
  TempDir dir;
  auto path = dir / "a.log";
  write_log(path, Mode::mac, 2000);
  auto written = read_log_index(index_path_for(path));
  ASSERT_TRUE(written);
  EXPECT_EQ(written->log_size, std::filesystem::file_size(path));
  EXPECT_GT(written->chunks.size(), 10u);

  LogReader with_index(path, reader_options(Mode::mac));
  EXPECT_EQ(with_index.index_status(), IndexStatus::loaded);
  auto scan_options = reader_options(Mode::mac);
  scan_options.use_index = false;
  scan_options.write_index = false;
  LogReader scanned(path, scan_options);
  EXPECT_EQ(scanned.chunk_index(), written->chunks);
}

TEST(LogIndex, MissingIndexIsRebuiltAndRewritten) {
  TempDir dir;
  auto path = dir / "a.log";
  auto events = write_log(path, Mode::plain, 1000);
  auto original = read_log_index(index_path_for(path));
  std::filesystem::remove(index_path_for(path));
  LogReader reader(path);
  EXPECT_EQ(reader.index_status(), IndexStatus::rebuilt_missing);
  EXPECT_EQ(read_log_index(index_path_for(path)), original);
  ASSERT_TRUE(reader.seek_to_record(777));
  EXPECT_EQ(reader.next(), events[777]);
}

TEST(LogIndex, StaleIndexIsDetectedAndRebuilt) {
  TempDir dir;
  auto path = dir / "a.log";
  write_log(path, Mode::plain, 1000);
  auto old_index = read_file(index_path_for(path));
  // A different log at the same path (e.g. re-recorded) with the old index copied back.
  auto o = writer_options(Mode::plain);
  o.overwrite = true;
  std::vector<Event> events;
  {
    LogWriter w(path, o);
    for (uint64_t i = 0; i < 1500; ++i) {
      events.push_back(make_event(i + 3));
      std::visit([](auto& r) { r.pos = Position{r.pos.landmark, 0, 0}; }, events.back());
      w.append(events.back());
    }
  }
  write_file(index_path_for(path), old_index);
  {
    LogReader reader(path);
    EXPECT_EQ(reader.index_status(), IndexStatus::rebuilt_stale);
    ASSERT_TRUE(reader.seek_to_record(1234));
    EXPECT_EQ(reader.next(), events[1234]);
  }
  // The log grew (or shrank) after indexing: the recorded size no longer matches.
  auto bytes = read_file(path);
  write_file(path, std::span(bytes).first(bytes.size() - 100));
  {
    LogReader reader(path);
    EXPECT_EQ(reader.index_status(), IndexStatus::rebuilt_stale);
    auto report = reader.verify();
    ASSERT_TRUE(report.problem);
    EXPECT_EQ(report.problem->kind, LogProblemKind::torn_tail);
    EXPECT_EQ(reader.chunk_index().size(), report.chunk_count);
  }
  LogReader reloaded(path);
  EXPECT_EQ(reloaded.index_status(), IndexStatus::loaded);
}

TEST(LogIndex, CorruptIndexIsRebuiltNotTrusted) {
  TempDir dir;
  auto path = dir / "a.log";
  auto events = write_log(path, Mode::encrypted, 1000);
  auto idx = read_file(index_path_for(path));
  idx[idx.size() / 2] ^= 0xff;
  write_file(index_path_for(path), idx);
  LogReader reader(path, reader_options(Mode::encrypted));
  EXPECT_EQ(reader.index_status(), IndexStatus::rebuilt_corrupt);
  ASSERT_TRUE(reader.seek_to_position({200, 0, 0}));
  auto index = reader.next_record_index();
  EXPECT_EQ(reader.next(), events[index]);
  EXPECT_EQ(event_position(events[index]), Position({200, 0, 0}));
  EXPECT_LT(event_position(events[index - 1]), Position({200, 0, 0}));
}
