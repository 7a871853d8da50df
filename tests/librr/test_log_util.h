#pragma once
// Helpers shared by the log tests: temporary directories, a deterministic
// record generator, whole-file byte access and a chunk map of a log file.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../../librr/src/log_format.h"
#include "librr/bytes.h"
#include "librr/log.h"
#include "librr/log_byte_report.h"

namespace logtest {

using namespace librr;

class TempDir {
 public:
  // tmpfs when available: these tests rewrite small files thousands of
  // times, and on a disk with discard every truncation waits for the device.
  explicit TempDir(bool prefer_tmpfs = true) {
    std::error_code ec;
    auto base = prefer_tmpfs && std::filesystem::is_directory("/dev/shm", ec) &&
                        access("/dev/shm", W_OK) == 0
                    ? std::filesystem::path("/dev/shm")
                    : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "librr-log-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Record i of a deterministic stream with non-decreasing positions and a
// realistic mix: mostly small inputs and interrupts, some AsyncPositions.
inline Event make_event(uint64_t i) {
  std::mt19937_64 rng(i * 0x9e3779b97f4a7c15ull + 1);
  Position pos{i / 4, (i % 4 == 3) ? 1u : 0u, 0};
  switch (i % 8) {
    case 0:
    case 4:
      return InterruptDelivery{pos, static_cast<uint8_t>(0x20 + i % 16),
                               static_cast<uint32_t>(i % 24)};
    case 3: {
      std::vector<uint8_t> state(64 + rng() % 256);
      for (auto& b : state) b = static_cast<uint8_t>(rng() % 7);
      Digest256 d{};
      d[0] = static_cast<uint8_t>(i);
      return AsyncPosition{pos, 1, std::move(state), MemoryDigest{d}};
    }
    case 7: {
      Digest256 a{}, b{};
      a[1] = static_cast<uint8_t>(i);
      b[2] = static_cast<uint8_t>(i >> 8);
      return StateDigest{pos, a, b,
                         (i % 16 == 7) ? std::optional<std::string>("detail") : std::nullopt};
    }
    default: {
      std::vector<uint8_t> data(1 + rng() % 24);
      for (auto& b : data) b = static_cast<uint8_t>('a' + rng() % 26);
      return Input{pos, (i % 3) ? "serial0" : "net0", std::move(data)};
    }
  }
}

inline std::vector<Event> read_all(LogReader& reader) {
  std::vector<Event> out;
  while (auto e = reader.next()) out.push_back(std::move(*e));
  return out;
}

inline std::vector<uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::filesystem::path& p, std::span<const uint8_t> bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

struct ChunkSpan {
  size_t offset, size;  // header + payload
  uint32_t records;
  size_t header_size;  // fixed (168) before log format 2.5, varying since
};

// How the log `file`'s chunk headers are laid out (test-side, trusting input).
inline logfmt::ChunkLayout chunk_layout_of(std::span<const uint8_t> file) {
  size_t header_size = logfmt::FileHeader::declared_size(file.first(16));
  return logfmt::FileHeader::decode(file.first(header_size)).chunk_layout();
}

// Walks a well-formed log's chunks by their headers (test-side, trusting input).
inline std::vector<ChunkSpan> chunk_spans(std::span<const uint8_t> file) {
  size_t header_size = logfmt::FileHeader::declared_size(file.first(16));
  const logfmt::ChunkLayout layout = chunk_layout_of(file);
  std::vector<ChunkSpan> out;
  for (size_t off = header_size; off + layout.min_size() <= file.size();) {
    auto h = logfmt::ChunkHeader::decode(file.subspan(off), layout);
    size_t size = h.header_size + h.stored_length;
    out.push_back({off, size, h.record_count, h.header_size});
    off += size;
  }
  return out;
}

// The decoded header of the chunk `span` of `file`.
inline logfmt::ChunkHeader chunk_header_at(std::span<const uint8_t> file, const ChunkSpan& span) {
  return logfmt::ChunkHeader::decode(file.subspan(span.offset, span.header_size),
                                     chunk_layout_of(file));
}

enum class Mode { plain, mac, encrypted };
inline const char* mode_name(Mode m) {
  return m == Mode::plain ? "plain" : m == Mode::mac ? "mac" : "encrypted";
}

inline Key test_key(uint8_t seed = 1) {
  std::array<uint8_t, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(seed * 31 + i);
  return Key::from_bytes(bytes);
}

inline LogWriterOptions writer_options(Mode m, size_t chunk_bytes = 1024) {
  LogWriterOptions o;
  if (m != Mode::plain) o.key = test_key();
  o.encrypt = m == Mode::encrypted;
  o.chunk_bytes = chunk_bytes;
  o.chunk_interval = std::chrono::milliseconds(10000);
  o.fsync = FsyncPolicy::never;
  return o;
}

inline LogReaderOptions reader_options(Mode m, bool use_index = true) {
  LogReaderOptions o;
  if (m != Mode::plain) o.key = test_key();
  o.use_index = use_index;
  o.write_index = use_index;
  return o;
}

// Writes `events` as a log at `path`.
inline void write_events(const std::filesystem::path& path, const std::vector<Event>& events,
                         Mode m = Mode::plain, size_t chunk_bytes = 1024) {
  LogWriter writer(path, writer_options(m, chunk_bytes));
  for (const Event& event : events) writer.append(event);
  writer.close();
}

// Writes records 0..n-1 of make_event, then (optionally) EndOfRecording.
inline std::vector<Event> write_log(const std::filesystem::path& path, Mode m, uint64_t n,
                                    bool terminate = true, size_t chunk_bytes = 1024) {
  std::vector<Event> events;
  LogWriter w(path, writer_options(m, chunk_bytes));
  for (uint64_t i = 0; i < n; ++i) {
    events.push_back(make_event(i));
    w.append(events.back());
  }
  if (terminate) {
    events.push_back(EndOfRecording{{n / 4 + 1, 0, 0}, "test done", 0});
    w.append(events.back());
  }
  w.close();
  return events;
}

// The byte report's share of one record kind, nullptr when it has none.
inline const LogByteShare* share_of(const LogByteReport& report, const std::string& kind) {
  auto it = std::find_if(report.shares.begin(), report.shares.end(),
                         [&](const LogByteShare& share) { return share.kind == kind; });
  return it == report.shares.end() ? nullptr : &*it;
}

// A fuzz seed of the log reader's corpus holds `events` in format 2.`minor`:
// rewritten first when RR_WRITE_FUZZ_SEEDS is set (chunks of `chunk_bytes`;
// then in the current format).
// `events` written in every mode read back identically from a log of minor
// version `min_minor` or later; a writer asked for format 1.0 refuses
// `newer` (a record holding a newer form), naming format `needed`.
inline void expect_round_trip_and_format_gate(const std::vector<Event>& events, uint16_t min_minor,
                                              const Event& newer, const std::string& needed) {
  TempDir dir;
  for (Mode mode : {Mode::plain, Mode::mac, Mode::encrypted}) {
    SCOPED_TRACE(mode_name(mode));
    const auto path = dir / (std::string(mode_name(mode)) + ".log");
    {
      LogWriter writer(path, writer_options(mode));
      for (const Event& event : events) writer.append(event);
      writer.close();
    }
    LogReader reader(path, reader_options(mode));
    EXPECT_GE(reader.info().version_minor, min_minor);
    EXPECT_EQ(read_all(reader), events);
  }
  auto old = writer_options(Mode::plain);
  old.format_version = 1;
  LogWriter writer(dir / "v1.log", old);
  try {
    writer.append(newer);
    ADD_FAILURE() << "a record needing format " << needed << " was written into format 1.0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs log format " + needed), std::string::npos)
        << e.what();
  }
}

inline void expect_fuzz_seed(const std::filesystem::path& seed, const std::vector<Event>& events,
                             size_t chunk_bytes, uint16_t minor) {
  if (std::getenv("RR_WRITE_FUZZ_SEEDS")) {
    minor = logfmt::kVersionMinor;
    auto options = writer_options(Mode::plain, chunk_bytes);
    options.overwrite = true;
    options.creator = "librr tests (fuzz seed)";
    LogWriter writer(seed, options);
    for (const Event& event : events) writer.append(event);
    writer.close();
    std::filesystem::remove(index_path_for(seed));
  }
  ASSERT_TRUE(std::filesystem::exists(seed)) << seed;
  auto options = reader_options(Mode::plain);
  options.write_index = false;
  LogReader reader(seed, options);
  EXPECT_EQ(reader.info().version_minor, minor);
  EXPECT_TRUE(reader.verify().ok);
  EXPECT_EQ(read_all(reader), events);
}

// Per tick an interrupt at a searched stop listing 1 + tick % 3 pages, and
// now and then an ordinary stop with a memory delta (LogFormat29, 210). The
// hashes are `hash_bits` wide.
inline std::vector<Event> searched_stop_stream(uint64_t ticks, uint8_t hash_bits = 64) {
  std::vector<Event> events;
  for (uint64_t t = 1; t <= ticks; ++t) {
    const Position at{t * 3, 1, 0};
    SearchedStop stop{0xffffffff81000d6e + t % 2, 0, {t, {}}};
    stop.hash_bits = hash_bits;
    stop.registers_xxh3 = (t * 0x9e3779b97f4a7c15ull) & stop.hash_mask();
    for (uint64_t k = 0; k <= t % 3; ++k) stop.pages.gfns.push_back(0x1000 + k * 7 + t % 5);
    events.emplace_back(AsyncPosition{at, 1, {}, std::move(stop)});
    events.emplace_back(InterruptDelivery{at, 0x20, 0});
    if (t % 7 == 0) {
      // Field by field: GCC 12 warns of a maybe-uninitialized variant
      // temporary when this is one braced initializer.
      AsyncPosition installed;
      installed.pos = {t * 3, 2, 0};
      installed.vcpu_state_format = 1;
      installed.vcpu_state.assign(64, 0x5a);
      installed.memory = MemoryDelta{t * 3, {}, DeltaBase::previous_position};
      events.emplace_back(std::move(installed));
    }
  }
  events.emplace_back(EndOfRecording{{ticks * 3 + 1, 0, 0}, "done", 0});
  return events;
}

// The same in log format 2.11's forms: each searched stop with one 32-bit
// hash (memory kind 7), and every fourth tick a kernel-return stop with a
// 32-bit registers hash (kind 8) before it (LogFormat211).
inline std::vector<Event> one_hash_stop_stream(uint64_t ticks) {
  std::vector<Event> events;
  for (Event& event : searched_stop_stream(ticks, 32)) {
    auto* async = std::get_if<AsyncPosition>(&event);
    auto* searched = async ? std::get_if<SearchedStop>(&async->memory) : nullptr;
    if (!searched) {
      events.push_back(std::move(event));
      continue;
    }
    const uint64_t t = async->pos.landmark / 3;
    if (t % 4 == 0) {
      KernelReturn at_return{0xffffffff81000e40, (t * 0xc2b2ae3d27d4eb4full) & 0xffffffffull};
      at_return.hash_bits = 32;
      AsyncPosition stop;
      stop.pos = {t * 3 - 1, 1, 0};
      stop.vcpu_state_format = 1;
      stop.memory = at_return;
      stop.kernel_entries = CodeArrivals{{0xffffffff81000a00}, static_cast<uint32_t>(t)};
      events.emplace_back(std::move(stop));
    }
    searched->one_hash = true;
    searched->registers_xxh3 = 0;
    searched->pages.xxh3 = (t * 0x9e3779b97f4a7c15ull) >> 32;
    events.push_back(std::move(event));
  }
  return events;
}

// The same stream's searched stops in log format 2.12's form: pages implied
// (memory kind 9), no listing; the kernel-return stops dropped (LogFormat212).
inline std::vector<Event> implied_pages_stop_stream(uint64_t ticks) {
  std::vector<Event> events;
  for (Event& event : one_hash_stop_stream(ticks)) {
    auto* async = std::get_if<AsyncPosition>(&event);
    if (async && std::holds_alternative<KernelReturn>(async->memory)) continue;
    if (auto* searched = async ? std::get_if<SearchedStop>(&async->memory) : nullptr) {
      searched->pages_implied = true;
      searched->pages.gfns.clear();
    }
    events.push_back(std::move(event));
  }
  return events;
}

// The AsyncPosition memory kind byte at `kind_at` of an encoded record is
// followed by a u64 rip and a u32 hash (memory kinds 7-9).
inline void expect_rip_and_hash_after(const std::vector<uint8_t>& bytes, size_t kind_at,
                                      uint64_t rip, uint32_t hash) {
  ASSERT_GE(bytes.size(), kind_at + 13);
  uint64_t stored_rip = 0;
  uint32_t stored_hash = 0;
  std::memcpy(&stored_rip, bytes.data() + kind_at + 1, sizeof stored_rip);
  std::memcpy(&stored_hash, bytes.data() + kind_at + 1 + 8, sizeof stored_hash);
  EXPECT_EQ(stored_rip, rip);
  EXPECT_EQ(stored_hash, hash);
}

}  // namespace logtest
