// FrameLog: segments, rotation, numbering, index, pcapng contents, disk full.
#include "frame_log.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "pcapng_reader.h"
#include "segment_file.h"
#include "test_support.h"

using namespace gateway;
using namespace gateway_test;

namespace {

constexpr uint64_t kStart = 1'700'000'000'000'000'000ull;

std::unique_ptr<FrameLog> make_log(const std::filesystem::path& dir, uint64_t segment_bytes,
                                   uint64_t* stats_calls = nullptr) {
  FrameLogSettings settings;
  settings.directory = dir;
  settings.segment_max_bytes = segment_bytes;
  settings.segment_max_seconds = 60;
  settings.chunk_bytes = 8192;
  return std::make_unique<FrameLog>(
      settings, std::vector<LoggedInterface>{{"lan0", 65535}, {"wan0", 65535}},
      [stats_calls](uint64_t now) {
        if (stats_calls) ++*stats_calls;
        return std::vector<pcapng::InterfaceStatistics>{{0, now, kStart, 1234, 7},
                                                        {1, now, kStart, 99, 0}};
      },
      kStart);
}

FrameToLog frame_at(const std::vector<uint8_t>& bytes, uint64_t i) {
  return FrameToLog{
      0,
      kStart + i * 1000,
      bytes,
      static_cast<uint32_t>(bytes.size() + (i % 2)),
      pcapng::epb_flags(pcapng::FlagDirection::kOutbound, pcapng::FlagReception::kUnicast),
      i,
      Direction::kIncoming};
}

}  // namespace

TEST(FrameLog, WritesDecodablePcapngAndMatchingIndex) {
  TempDir dir;
  auto log = make_log(dir.path(), 64 << 20);
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 300; ++i) {
    frames.push_back(ipv4_udp_frame({192, 0, 2, 1}, {10, 0, 0, 2}, random_bytes(10 + i, i)));
    auto recorded = log->record(frame_at(frames.back(), i));
    EXPECT_EQ(recorded.digest, librr::hash256(frames.back()));
    EXPECT_EQ(recorded.ordinal, i);
  }
  log->close(kStart + 1'000'000);
  EXPECT_EQ(log->frames_logged(), 300u);
  EXPECT_EQ(log->frames_unwritten(), 0u);

  auto segment = dir.path() / segment_file_name(1);
  ASSERT_TRUE(std::filesystem::exists(segment));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / segment_partial_file_name(1)));
  auto file = parse_pcapng(zstd_decompress_file(segment));
  EXPECT_EQ(file.section_headers, 1);
  ASSERT_EQ(file.interfaces.size(), 2u);
  EXPECT_EQ(file.interfaces[0].name, "lan0");
  EXPECT_EQ(file.interfaces[0].tsresol, 9);
  EXPECT_EQ(file.interfaces[0].link_type, 1);
  ASSERT_EQ(file.packets.size(), 300u);
  ASSERT_EQ(file.statistics.size(), 2u);
  EXPECT_EQ(file.statistics[0].received, 1234u);
  EXPECT_EQ(file.statistics[0].dropped, 7u);

  FrameIndex index(dir.path() / kIndexFileName);
  auto rows = index.all_frames();
  ASSERT_EQ(rows.size(), 300u);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& p = file.packets[i];
    EXPECT_EQ(p.data, frames[i]);
    EXPECT_EQ(p.timestamp, kStart + i * 1000);
    EXPECT_EQ(p.wire_length, frames[i].size() + (i % 2));
    EXPECT_EQ(p.drop_count, i);
    EXPECT_EQ(p.flags, 2u | 1u << 2);
    EXPECT_EQ(rows[i].segment, 1u);
    EXPECT_EQ(rows[i].ordinal, i);
    EXPECT_EQ(rows[i].pcapng_offset, p.offset);
    EXPECT_EQ(rows[i].digest, librr::hash256(p.data));
    EXPECT_EQ(rows[i].interface, "lan0");
    EXPECT_EQ(rows[i].direction, "incoming");
    EXPECT_EQ(index.count_digest(rows[i].digest), 1u);
  }
}

TEST(FrameLog, TsharkReadsTheDecompressedSegment) {
  if (std::system("command -v tshark >/dev/null 2>&1") != 0) GTEST_SKIP() << "tshark missing";
  TempDir dir;
  auto log = make_log(dir.path(), 64 << 20);
  for (uint32_t i = 0; i < 25; ++i)
    log->record(frame_at(ipv4_udp_frame({192, 0, 2, 1}, {10, 0, 0, 2}, random_bytes(40, i)), i));
  log->close(kStart + 1'000'000);
  auto pcap = dir.path() / "seg.pcapng";
  int status = 0;
  run_command("zstd -q -dc " + (dir.path() / segment_file_name(1)).string() + " > " + pcap.string(),
              &status);
  ASSERT_EQ(status, 0);
  auto out = run_command(
      "tshark -r " + pcap.string() + " -T fields -e ip.src -e ip.dst -e frame.interface_name 2>&1",
      &status);
  ASSERT_EQ(status, 0) << out;
  size_t lines = 0;
  for (size_t at = out.find("192.0.2.1\t10.0.0.2\tlan0\n"); at != std::string::npos;
       at = out.find("192.0.2.1\t10.0.0.2\tlan0\n", at + 1))
    ++lines;
  EXPECT_EQ(lines, 25u) << out;
}

TEST(FrameLog, RotatesBySizeAndRestartContinuesNumbering) {
  TempDir dir;
  uint64_t stats_calls = 0;
  {
    auto log = make_log(dir.path(), 8192, &stats_calls);
    for (uint32_t i = 0; i < 40; ++i)
      log->record(frame_at(ipv4_udp_frame({192, 0, 2, 1}, {10, 0, 0, 2}, random_bytes(900, i)), i));
    log->close(kStart + 1);
    EXPECT_GE(log->current_segment(), 0u);
  }
  size_t segments = 0, packets = 0;
  for (uint64_t n = 1; std::filesystem::exists(dir.path() / segment_file_name(n)); ++n) {
    auto file = parse_pcapng(zstd_decompress_file(dir.path() / segment_file_name(n)));
    EXPECT_LE(zstd_decompress_file(dir.path() / segment_file_name(n)).size(), 8192u + 2048);
    EXPECT_EQ(file.statistics.size(), 2u) << "every segment ends with ISBs";
    packets += file.packets.size();
    ++segments;
  }
  EXPECT_GE(segments, 4u);
  EXPECT_EQ(packets, 40u);
  EXPECT_EQ(stats_calls, segments);
  EXPECT_EQ(next_segment_number(dir.path()), segments + 1);

  // A leftover partial segment (crash) also counts: numbering never reuses it.
  std::ofstream(dir.path() / segment_partial_file_name(segments + 3)) << "x";
  auto log = make_log(dir.path(), 8192);
  EXPECT_EQ(log->current_segment(), segments + 4);
  log->close(kStart + 2);
  FrameIndex index(dir.path() / kIndexFileName);
  EXPECT_EQ(index.all_frames().size(), 40u);
}

TEST(FrameLog, RotationIsDueAfterTheConfiguredTime) {
  TempDir dir;
  auto log = make_log(dir.path(), 64 << 20);
  EXPECT_FALSE(log->rotation_due(kStart + 59'000'000'000ull));
  EXPECT_TRUE(log->rotation_due(kStart + 60'000'000'000ull));
  log->rotate(kStart + 60'000'000'000ull);
  EXPECT_EQ(log->current_segment(), 2u);
  EXPECT_FALSE(log->rotation_due(kStart + 61'000'000'000ull));
  log->update_limits(64 << 20, 0);
  EXPECT_FALSE(log->rotation_due(kStart + 1000'000'000'000ull));
  log->close(kStart + 61'000'000'000ull);
}

TEST(FrameLog, DiskFullThrowsWriteErrorAndCountsUnwrittenFrames) {
  SmallTmpfs disk(256 * 1024);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount tmpfs (not root?): disk-full test skipped";
  auto log = make_log(disk.path(), 64 << 20);
  uint64_t offered = 0;  // frames given to record()
  bool failed = false;
  int error_number = 0;
  for (uint32_t i = 0; i < 2000 && !failed; ++i) {
    try {
      // Random payloads do not compress: the disk fills quickly.
      ++offered;
      log->record(
          frame_at(ipv4_udp_frame({192, 0, 2, 1}, {10, 0, 0, 2}, random_bytes(1400, i)), i));
      log->flush();
    } catch (const WriteError& e) {
      failed = true;
      error_number = e.error_number();
      // Either the segment (ENOSPC) or the SQLite index (SQLITE_FULL) hits the limit first.
      std::string what = e.what();
      EXPECT_TRUE(what.find("No space left") != std::string::npos ||
                  what.find("disk is full") != std::string::npos)
          << what;
    }
  }
  ASSERT_TRUE(failed) << "a 256 KiB tmpfs never filled up";
  EXPECT_EQ(error_number, ENOSPC);
  EXPECT_GE(log->frames_unwritten(), 1u);
  EXPECT_EQ(log->frames_logged() + log->frames_unwritten(), offered);
  // What was written stays decodable (a failed chunk is cut off) and holds every
  // frame counted as logged; frames in the segment whose index rows failed count
  // as unwritten.
  auto partial = disk.path() / segment_partial_file_name(1);
  auto file = parse_pcapng(zstd_decompress_file(partial));
  EXPECT_GE(file.packets.size(), log->frames_logged());
  EXPECT_LE(file.packets.size(), offered);
  FrameIndex index(disk.path() / kIndexFileName);
  EXPECT_EQ(index.all_frames().size(), log->frames_logged());
}
