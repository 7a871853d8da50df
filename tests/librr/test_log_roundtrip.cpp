// Round trips through real log files, with and without MAC and encryption.
#include <gtest/gtest.h>

#include <thread>

#include "librr/page_delta.h"
#include "librr/replayer.h"
#include "test_log_util.h"

using namespace logtest;

class LogRoundTrip : public ::testing::TestWithParam<Mode> {
 protected:
  TempDir dir;
};

INSTANTIATE_TEST_SUITE_P(Modes, LogRoundTrip,
                         ::testing::Values(Mode::plain, Mode::mac, Mode::encrypted),
                         [](const auto& param_info) { return mode_name(param_info.param); });

TEST_P(LogRoundTrip, EveryRecordTypeSurvivesTheLog) {
  auto path = dir / "rec.log";
  std::vector<uint8_t> shadow(4096, 1), page = shadow;
  page[7] = 9;
  PageChange change{3, shadow, page};
  std::vector<Event> events = {
      InterruptDelivery{{1, 0, 0}, 0x30, 4},
      AsyncPosition{{1, 1, 0}, 42, std::vector<uint8_t>(3000, 0xab), MemoryDigest{{1, 2, 3}}},
      AsyncPosition{
          {1, 2, 0}, 42, std::vector<uint8_t>(100, 1), make_memory_delta(1, {&change, 1})},
      // Memory kind 3 (format 2.3), without and with the kernel-entry tail.
      AsyncPosition{{1, 3, 0}, 42, std::vector<uint8_t>(64, 2), PagesDigest{0xabc, {1, 7, 9000}}},
      AsyncPosition{{1, 4, 0},
                    42,
                    std::vector<uint8_t>(64, 3),
                    PagesDigest{0xdef, {2}},
                    CodeArrivals{{0x101000, 0x101040}, 5}},
      Input{{2, 0, 0}, "clock", {1, 2, 3, 4, 5, 6, 7, 8}},
      StateDigest{{3, 0, 0}, {9}, {8}, std::string("why")},
      CheckpointRef{{4, 0, 0}, "cp-4.snap", {7}},
  };
  for (uint64_t i = 0; i < 500; ++i) {
    Event e = make_event(i);
    std::visit([](auto& r) { r.pos.landmark += 10; }, e);
    events.push_back(e);
  }
  events.push_back(EndOfRecording{{1000, 0, 0}, "guest powered off", 0});
  {
    LogWriter w(path, writer_options(GetParam()));
    for (const auto& e : events) w.append(e);
    w.close();
    w.close();  // idempotent
  }
  LogReader reader(path, reader_options(GetParam()));
  EXPECT_EQ(reader.info().encrypted, GetParam() == Mode::encrypted);
  EXPECT_EQ(reader.info().mac, GetParam() != Mode::plain);
  auto report = reader.verify();
  EXPECT_TRUE(report.ok) << report.to_string();
  EXPECT_TRUE(report.terminated);
  EXPECT_EQ(report.authenticated, GetParam() != Mode::plain);
  EXPECT_GT(report.chunk_count, 5u);
  EXPECT_EQ(report.record_count, events.size());
  EXPECT_EQ(report.counts_by_type[size_t(EventType::checkpoint_ref) - 1], 1u);
  EXPECT_EQ(report.counts_by_type[size_t(EventType::end_of_recording) - 1], 1u);
  EXPECT_EQ(report.first, Position({1, 0, 0}));
  EXPECT_EQ(report.last, Position({1000, 0, 0}));
  EXPECT_EQ(reader.index_status(), IndexStatus::loaded);  // written by the writer's close()
  EXPECT_EQ(read_all(reader), events);
  EXPECT_FALSE(reader.problem()) << reader.problem()->to_string();
}

TEST_P(LogRoundTrip, SeeksByRecordIndexAndPosition) {
  auto path = dir / "seek.log";
  auto events = write_log(path, GetParam(), 3000);
  LogReader reader(path, reader_options(GetParam()));
  ASSERT_GT(reader.chunk_index().size(), 20u);
  for (uint64_t target : {2999ull, 0ull, 1500ull, 17ull, 2000ull, 3000ull, 1ull}) {
    ASSERT_TRUE(reader.seek_to_record(target)) << target;
    EXPECT_EQ(reader.next_record_index(), target);
    auto e = reader.next();
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, events[target]) << target;
  }
  EXPECT_FALSE(reader.seek_to_record(events.size()));
  EXPECT_FALSE(reader.next());
  for (uint64_t landmark : {500ull, 3ull, 0ull, 749ull, 200ull}) {
    Position target{landmark, 1, 0};
    ASSERT_TRUE(reader.seek_to_position(target));
    auto index = reader.next_record_index();
    auto e = reader.next();
    ASSERT_TRUE(e);
    EXPECT_GE(event_position(*e), target);
    if (index > 0) {
      EXPECT_LT(event_position(events[index - 1]), target);
    }
  }
  EXPECT_FALSE(reader.seek_to_position({1'000'000, 0, 0}));
}

TEST_P(LogRoundTrip, NextRefAndReplayerHandOutTheSameRecordsAsNext) {
  auto path = dir / "ref.log";
  auto events = write_log(path, GetParam(), 2000);
  {
    // Alternating the owning and the recycled form must not disturb either:
    // next() moves the recycled event out, next_ref() then refills it.
    LogReader reader(path, reader_options(GetParam()));
    for (size_t i = 0; i < events.size(); ++i) {
      if (i % 5 == 0) {
        auto owned = reader.next();
        ASSERT_TRUE(owned) << i;
        EXPECT_EQ(*owned, events[i]) << i;
      } else {
        const Event* e = reader.next_ref();
        ASSERT_NE(e, nullptr) << i;
        EXPECT_EQ(*e, events[i]) << i;
      }
    }
    EXPECT_EQ(reader.next_ref(), nullptr);
    EXPECT_FALSE(reader.problem());
    // After a seek the recycled events hold the target record.
    ASSERT_TRUE(reader.seek_to_record(1234));
    const Event* e = reader.next_ref();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(*e, events[1234]);
  }
  Replayer replayer(path, reader_options(GetParam()));
  for (size_t i = 0; i < events.size(); ++i) {
    const Position& pos = event_position(events[i]);
    const Event* next = replayer.peek();
    ASSERT_NE(next, nullptr) << i;
    EXPECT_EQ(*next, events[i]) << i;
    EXPECT_EQ(replayer.take_at({pos.landmark + 1, 0, 0}), nullptr);  // wrong position
    EXPECT_THROW(replayer.check_nothing_before({pos.landmark + 1, 0, 0}), Divergence);
    const Event* taken = replayer.take_at(pos);
    ASSERT_NE(taken, nullptr) << i;
    EXPECT_EQ(*taken, events[i]) << i;
  }
  EXPECT_EQ(replayer.peek(), nullptr);
  EXPECT_EQ(replayer.records_consumed(), events.size());
  EXPECT_FALSE(replayer.problem());
}

TEST_P(LogRoundTrip, UnterminatedLogIsReportedButFullyReadable) {
  auto path = dir / "open.log";
  auto events = write_log(path, GetParam(), 700, /*terminate=*/false);
  LogReader reader(path, reader_options(GetParam()));
  auto report = reader.verify();
  EXPECT_FALSE(report.ok);
  EXPECT_FALSE(report.terminated);
  ASSERT_TRUE(report.problem);
  EXPECT_EQ(report.problem->kind, LogProblemKind::missing_end);
  EXPECT_EQ(report.problem->offset, std::filesystem::file_size(path));
  EXPECT_EQ(report.record_count, 700u);
  EXPECT_EQ(read_all(reader), events);
  ASSERT_TRUE(reader.problem());
  EXPECT_EQ(reader.problem()->kind, LogProblemKind::missing_end);
}

TEST(LogWriter, EnforcesOrderEndAndClose) {
  TempDir dir;
  LogWriter w(dir / "a.log", writer_options(Mode::plain));
  w.append(Input{{5, 1, 0}, "serial0", {1}});
  w.append(Input{{5, 1, 0}, "serial0", {2}});  // equal positions are fine
  EXPECT_THROW(w.append(Input{{5, 0, 9}, "serial0", {3}}), Error);
  w.append(EndOfRecording{{6, 0, 0}, "done", 0});
  EXPECT_THROW(w.append(Input{{7, 0, 0}, "serial0", {3}}), Error);
  w.close();
  EXPECT_THROW(w.append(Input{{8, 0, 0}, "serial0", {3}}), Error);
  EXPECT_THROW(LogWriter(dir / "a.log", writer_options(Mode::plain)), SystemError)
      << "an existing log must not be clobbered without overwrite";
  auto o = writer_options(Mode::plain);
  o.encrypt = true;
  EXPECT_THROW(LogWriter(dir / "b.log", o), Error) << "encryption without a key";
}

TEST(LogWriter, SealsChunksByAgeAndDestructorCloses) {
  TempDir dir;
  auto path = dir / "age.log";
  {
    auto o = writer_options(Mode::mac, 1 << 20);
    o.chunk_interval = std::chrono::milliseconds(20);
    o.chunk_min_bytes = 0;  // seal by chunk_interval however small (quiet logs: test_log_format2)
    LogWriter w(path, o);
    w.append(Input{{1, 0, 0}, "serial0", {'x'}});
    for (int i = 0; i < 200 && w.chunks_written() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(w.chunks_written(), 1u) << "a lone record must be sealed after chunk_interval";
    w.append(Input{{2, 0, 0}, "serial0", {'y'}});
  }  // destructor flushes the second record
  LogReader reader(path, reader_options(Mode::mac));
  auto report = reader.verify();
  EXPECT_EQ(report.chunk_count, 2u);
  EXPECT_EQ(report.record_count, 2u);
}

TEST(LogKeys, MissingAndWrongKeysGiveDistinctClearErrors) {
  TempDir dir;
  write_log(dir / "enc.log", Mode::encrypted, 50);
  write_log(dir / "mac.log", Mode::mac, 50);
  write_log(dir / "plain.log", Mode::plain, 50);
  auto message_of = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const LogKeyError& e) {
      return e.what();
    }
    return "(no LogKeyError)";
  };
  std::string no_key = message_of([&] { LogReader r(dir / "enc.log"); });
  EXPECT_NE(no_key.find("log is encrypted: a key file is required"), std::string::npos) << no_key;
  LogReaderOptions wrong;
  wrong.key = test_key(2);
  std::string expected = "wrong key: key fingerprint " + test_key(2).fingerprint() +
                         " does not match the log's " + test_key(1).fingerprint();
  for (const char* name : {"enc.log", "mac.log"}) {
    std::string msg = message_of([&] { LogReader r(dir / name, wrong); });
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
  }
  std::string unkeyed = message_of([&] { LogReader r(dir / "plain.log", wrong); });
  EXPECT_NE(unkeyed.find("has no MAC"), std::string::npos) << unkeyed;
  // A MAC'd log can still be read without the key, just not authenticated.
  LogReader r(dir / "mac.log");
  auto report = r.verify();
  EXPECT_TRUE(report.ok);
  EXPECT_FALSE(report.authenticated);
}
