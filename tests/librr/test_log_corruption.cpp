// Damage to a log (flipped bytes, truncation, deleted/swapped/edited chunks)
// is detected, located, and never crashes the reader.
#include <gtest/gtest.h>

#include "../../librr/src/log_compact.h"
#include "../../librr/src/log_format.h"
#include "librr/compress.h"
#include "test_log_util.h"

using namespace logtest;

namespace {

// Opens and reads a damaged log. Returns the problem (from open or from
// verify) and checks that what iteration returns is a prefix of `original`.
std::optional<LogProblem> read_damaged(const std::filesystem::path& path, Mode m,
                                       const std::vector<Event>& original,
                                       size_t* records_read = nullptr) {
  try {
    LogReader reader(path, reader_options(m, /*use_index=*/false));
    auto report = reader.verify();
    auto events = read_all(reader);
    EXPECT_EQ(events.size(), report.record_count);
    EXPECT_LE(events.size(), original.size());
    for (size_t i = 0; i < events.size() && i < original.size(); ++i)
      if (events[i] != original[i]) {
        ADD_FAILURE() << "record " << i << " differs from what was written";
        break;
      }
    if (records_read) *records_read = events.size();
    EXPECT_EQ(report.ok, !report.problem.has_value());
    return report.problem;
  } catch (const LogFormatError& e) {
    if (records_read) *records_read = 0;
    return LogProblem{e.kind(), 0, 0, e.what()};
  }
}

class LogCorruption : public ::testing::TestWithParam<Mode> {
 protected:
  TempDir dir;
};

INSTANTIATE_TEST_SUITE_P(Modes, LogCorruption,
                         ::testing::Values(Mode::plain, Mode::mac, Mode::encrypted),
                         [](const auto& param_info) { return mode_name(param_info.param); });

}  // namespace

TEST_P(LogCorruption, EverySingleByteCorruptionIsDetected) {
  auto path = dir / "good.log";
  auto events = write_log(path, GetParam(), 400);
  auto good = read_file(path);
  auto damaged_path = dir / "bad.log";
  std::mt19937_64 rng(42);
  for (int seed = 0; seed < 600; ++seed) {
    auto bytes = good;
    size_t at = rng() % bytes.size();
    bytes[at] ^= static_cast<uint8_t>(1 + rng() % 255);
    write_file(damaged_path, bytes);
    auto problem = read_damaged(damaged_path, GetParam(), events);
    ASSERT_TRUE(problem) << "flip at offset " << at << " went unnoticed";
    EXPECT_NE(problem->kind, LogProblemKind::missing_end) << "offset " << at;
    EXPECT_LE(problem->offset, at) << "problem reported after the damaged byte";
  }
}

TEST_P(LogCorruption, TruncationAtEveryOffsetRecoversTheCompleteChunkPrefix) {
  auto path = dir / "full.log";
  auto events = write_log(path, GetParam(), 60, true, /*chunk_bytes=*/300);
  auto full = read_file(path);
  auto spans = chunk_spans(full);
  ASSERT_GE(spans.size(), 4u);
  size_t header_size = spans.front().offset;
  auto cut_path = dir / "cut.log";
  for (size_t len = 0; len <= full.size(); ++len) {
    write_file(cut_path, std::span(full).first(len));
    size_t complete = 0, records = 0, valid_end = header_size;
    for (const auto& s : spans)
      if (s.offset + s.size <= len) {
        ++complete;
        records += s.records;
        valid_end = s.offset + s.size;
      }
    size_t read = 0;
    auto problem = read_damaged(cut_path, GetParam(), events, &read);
    if (len == full.size()) {
      EXPECT_FALSE(problem);
      EXPECT_EQ(read, events.size());
      continue;
    }
    ASSERT_TRUE(problem) << len;
    EXPECT_EQ(read, records) << "cut at " << len;
    if (len < header_size) {
      EXPECT_EQ(problem->kind, LogProblemKind::torn_tail) << len << " " << problem->message;
    } else if (len == valid_end) {
      EXPECT_EQ(problem->kind, LogProblemKind::missing_end) << len;
      EXPECT_EQ(problem->offset, len);
    } else {
      EXPECT_EQ(problem->kind, LogProblemKind::torn_tail) << len << " " << problem->message;
      EXPECT_EQ(problem->offset, valid_end) << len;
      EXPECT_EQ(problem->chunk_index, complete) << len;
    }
  }
}

TEST_P(LogCorruption, DeletedOrSwappedChunksBreakTheChain) {
  auto path = dir / "chain.log";
  auto events = write_log(path, GetParam(), 200, true, 400);
  auto full = read_file(path);
  auto spans = chunk_spans(full);
  ASSERT_GE(spans.size(), 6u);
  auto damaged = dir / "damaged.log";
  auto slice = [&](const ChunkSpan& s) {
    return std::vector<uint8_t>(full.begin() + s.offset, full.begin() + s.offset + s.size);
  };
  {  // delete chunk 3: chunk 4 now sits at chunk 3's offset and does not link
    std::vector<uint8_t> bytes(full.begin(), full.begin() + spans[3].offset);
    bytes.insert(bytes.end(), full.begin() + spans[4].offset, full.end());
    write_file(damaged, bytes);
    size_t read = 0;
    auto problem = read_damaged(damaged, GetParam(), events, &read);
    ASSERT_TRUE(problem);
    EXPECT_EQ(problem->kind, LogProblemKind::bad_chain) << problem->to_string();
    EXPECT_EQ(problem->offset, spans[3].offset);
    EXPECT_EQ(problem->chunk_index, 3u);
    EXPECT_EQ(read, spans[0].records + spans[1].records + spans[2].records);
  }
  {  // swap chunks 2 and 3
    std::vector<uint8_t> bytes(full.begin(), full.begin() + spans[2].offset);
    auto c2 = slice(spans[2]), c3 = slice(spans[3]);
    bytes.insert(bytes.end(), c3.begin(), c3.end());
    bytes.insert(bytes.end(), c2.begin(), c2.end());
    bytes.insert(bytes.end(), full.begin() + spans[4].offset, full.end());
    write_file(damaged, bytes);
    auto problem = read_damaged(damaged, GetParam(), events);
    ASSERT_TRUE(problem);
    EXPECT_EQ(problem->kind, LogProblemKind::bad_chain) << problem->to_string();
    EXPECT_EQ(problem->offset, spans[2].offset);
  }
  {  // delete the last chunk (holding EndOfRecording): an unterminated log
    std::vector<uint8_t> bytes(full.begin(), full.begin() + spans.back().offset);
    write_file(damaged, bytes);
    auto problem = read_damaged(damaged, GetParam(), events);
    ASSERT_TRUE(problem);
    EXPECT_EQ(problem->kind, LogProblemKind::missing_end);
  }
  {  // bytes appended after EndOfRecording
    auto bytes = full;
    auto extra = slice(spans[1]);
    bytes.insert(bytes.end(), extra.begin(), extra.end());
    write_file(damaged, bytes);
    auto problem = read_damaged(damaged, GetParam(), events);
    ASSERT_TRUE(problem);
    EXPECT_EQ(problem->kind, LogProblemKind::trailing_data);
    EXPECT_EQ(problem->offset, full.size());
  }
}

// An attacker without the key edits a record, then recomputes the payload
// checksum, the header checksum and every later chain link. Only the MAC
// can catch that; an unkeyed log cannot (see the threat model).
TEST(LogTamper, EditWithRecomputedChecksumsAndChainIsCaughtByTheMac) {
  TempDir dir;
  for (Mode m : {Mode::mac, Mode::plain}) {
    auto path = dir / (std::string(mode_name(m)) + ".log");
    auto events = write_log(path, m, 200, true, 400);
    auto full = read_file(path);
    auto spans = chunk_spans(full);
    ASSERT_GE(spans.size(), 4u);

    // Rebuild the file chunk by chunk, editing chunk 1's first Input byte.
    // Since format 2.7 a chunk's zstd frame continues the previous chunk's
    // payload, so every chunk after the edit up to the next key chunk is
    // compressed again too (what an informed attacker does).
    const bool chained = logfmt::kChainedChunksMinor <= logfmt::kVersionMinor;
    size_t header_size = spans[0].offset;
    std::vector<uint8_t> out(full.begin(), full.begin() + header_size);
    Digest prev = hash256(std::span(full).first(header_size));
    bool edited = false;
    std::vector<uint8_t> previous_old, previous_new;  // compact payloads: the next prefix
    ZstdCompressor compressor(1);
    for (size_t k = 0; k < spans.size(); ++k) {
      auto h = chunk_header_at(full, spans[k]);
      std::vector<uint8_t> payload(full.begin() + spans[k].offset + spans[k].header_size,
                                   full.begin() + spans[k].offset + spans[k].size);
      const bool with_prefix = chained && k % logfmt::kKeyChunkInterval != 0;
      std::vector<uint8_t> compact(h.raw_length);
      zstd_decompress_into(
          payload, compact,
          with_prefix ? std::span<const uint8_t>(previous_old) : std::span<const uint8_t>());
      previous_old = compact;
      if (k == 1) {
        // Format 2 stores compact records: expand them to the u32-framed
        // form, edit, and compact again.
        std::vector<uint8_t> raw;
        logcompact::expand_records(compact, h.first, logfmt::kMaxRawLength, raw);
        // Records are [u32 len][tag]...: find an Input (tag 3) and change its last byte.
        for (size_t pos = 0; pos < raw.size();) {
          uint32_t len = ByteReader(std::span(raw).subspan(pos, 4)).u32();
          if (raw[pos + 4] == static_cast<uint8_t>(EventType::input)) {
            raw[pos + 4 + len - 1] ^= 0x20;
            edited = true;
            break;
          }
          pos += 4 + len;
        }
        compact.clear();
        logcompact::compact_records(raw, h.first, compact);
      }
      if (k >= 1) {
        h.raw_length = static_cast<uint32_t>(compact.size());
        payload.clear();
        compressor.compress_append(
            compact, payload,
            with_prefix ? std::span<const uint8_t>(previous_new) : std::span<const uint8_t>());
        h.stored_length = static_cast<uint32_t>(payload.size());
      }
      previous_new = compact;
      h.payload_checksum = checksum64(payload);
      h.prev_hash = prev;
      auto header = h.encode(chunk_layout_of(full));  // recomputes the header checksum
      prev = hash256(header);
      out.insert(out.end(), header.begin(), header.end());
      out.insert(out.end(), payload.begin(), payload.end());
    }
    ASSERT_TRUE(edited);
    write_file(path, out);
    LogReader reader(path, reader_options(m, false));
    auto report = reader.verify();
    if (m == Mode::mac) {
      ASSERT_TRUE(report.problem);
      EXPECT_EQ(report.problem->kind, LogProblemKind::bad_mac) << report.to_string();
      EXPECT_EQ(report.problem->chunk_index, 1u);
      EXPECT_EQ(report.problem->offset, spans[1].offset);
      EXPECT_EQ(report.record_count, spans[0].records);
    } else {
      EXPECT_TRUE(report.ok) << "without a key an edit with recomputed checksums is undetectable";
      EXPECT_NE(read_all(reader), events);
    }
  }
}
