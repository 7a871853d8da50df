// Event log throughput: LogWriter and LogReader on realistic record mixes,
// next to peers measured in the same run on the same raw bytes (one-shot
// zstd compression, plain fwrite, zstd decompression).
// Targets: writer >= 200 MB/s of raw records, reader >= 500 MB/s.
#include <fmt/format.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "librr/compress.h"
#include "librr/log.h"
#include "librr/page_delta.h"

using namespace librr;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds used by the whole process (all threads). On a shared, loaded
// machine wall-clock rates say more about the neighbours than about the
// code; raw bytes per CPU-second is the "one core" figure.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct Timer {
  Clock::time_point wall = Clock::now();
  double cpu = cpu_seconds();
  std::pair<double, double> elapsed() const { return {seconds_since(wall), cpu_seconds() - cpu}; }
};

// Many small Input and InterruptDelivery records, as from a chatty serial/net guest.
std::vector<Event> small_mix(size_t n) {
  std::mt19937_64 rng(1);
  std::vector<Event> out;
  for (size_t i = 0; i < n; ++i) {
    Position pos{i / 2, 0, 0};
    if (i % 3 == 0) {
      out.push_back(InterruptDelivery{pos, static_cast<uint8_t>(0x20 + rng() % 8), 4});
    } else {
      std::vector<uint8_t> data(8 + rng() % 56);
      for (auto& b : data) b = static_cast<uint8_t>(' ' + rng() % 64);
      out.push_back(Input{pos, i % 2 ? "serial0" : "net0", std::move(data)});
    }
  }
  return out;
}

// AsyncPosition records with 1-4 KiB of vCPU state and small memory deltas.
std::vector<Event> async_mix(size_t n) {
  std::mt19937_64 rng(2);
  std::vector<uint8_t> shadow(4096), page(4096);
  for (auto& b : shadow) b = static_cast<uint8_t>(rng());
  std::vector<Event> out;
  for (size_t i = 0; i < n; ++i) {
    Position pos{i / 4, 1 + i % 4, 0};
    std::vector<uint8_t> state(1024 + rng() % 3072);
    for (size_t k = 0; k < state.size(); ++k)  // registers: mostly small values and zeros
      state[k] = (k % 8 < 3) ? static_cast<uint8_t>(rng()) : 0;
    if (i % 2) {
      out.push_back(AsyncPosition{pos, 1, std::move(state), MemoryDigest{{1, 2, 3}}});
    } else {
      page = shadow;
      for (int k = 0; k < 16; ++k) page[rng() % page.size()] ^= static_cast<uint8_t>(rng());
      PageChange change{rng() % 100000, shadow, page};
      out.push_back(AsyncPosition{pos, 1, std::move(state), make_memory_delta(0, {&change, 1})});
    }
  }
  return out;
}

struct Row {
  std::string name;
  double wall_mb_s;
  double cpu_mb_s;
  std::string note;
};

void run(const std::string& mix_name, const std::vector<Event>& events,
         const std::filesystem::path& dir, bool encrypted, std::vector<Row>& rows) {
  // Raw bytes = the framed records (u32 length + encoded record), as the
  // writer buffers them and as a chunk's payload decompresses to: the sum of
  // the chunk headers' raw_length.
  std::vector<uint8_t> raw;
  for (const auto& e : events) {
    auto rec = encode_event(e);
    uint32_t len = static_cast<uint32_t>(rec.size());
    raw.insert(raw.end(), reinterpret_cast<uint8_t*>(&len), reinterpret_cast<uint8_t*>(&len) + 4);
    raw.insert(raw.end(), rec.begin(), rec.end());
  }
  double mb = raw.size() / 1e6;
  std::string tag = mix_name + (encrypted ? " +mac+enc" : "");
  auto path = dir / "bench.log";
  std::filesystem::remove(path);

  LogWriterOptions wo;
  wo.fsync = FsyncPolicy::never;
  if (encrypted) {
    wo.key = Key::generate();
    wo.encrypt = true;
  }
  Timer t;
  {
    LogWriter w(path, wo);
    for (const auto& e : events) w.append(e);
    w.close();
  }
  auto [write_wall, write_cpu] = t.elapsed();
  uint64_t file_size = std::filesystem::file_size(path);

  LogReaderOptions ro;
  ro.key = wo.key;
  // Every record is checked and fully decoded; summing a field of each keeps
  // the loop honest.
  t = Timer();
  size_t read_count = 0;
  uint64_t landmark_sum = 0;
  {
    LogReader r(path, ro);
    while (const Event* e = r.next_ref()) {
      ++read_count;
      landmark_sum += event_position(*e).landmark;
    }
  }
  auto [read_wall, read_cpu] = t.elapsed();
  uint64_t expected_sum = 0;
  for (const auto& e : events) expected_sum += event_position(e).landmark;
  if (read_count != events.size() || landmark_sum != expected_sum)
    fmt::print(stderr, "read {} of {} records, landmark sum {} (expected {})!\n", read_count,
               events.size(), landmark_sum, expected_sum);

  rows.push_back({"LogWriter " + tag, mb / write_wall, mb / write_cpu,
                  fmt::format("{:.1f} B/record stored, raw {:.1f} B/record, ratio {:.2f}",
                              double(file_size) / events.size(), double(raw.size()) / events.size(),
                              double(raw.size()) / file_size)});
  rows.push_back({"LogReader " + tag, mb / read_wall, mb / read_cpu,
                  fmt::format("{} records, next_ref()", read_count)});
  if (encrypted) return;

  // The owning next(): one event (and its buffers) handed over per record.
  t = Timer();
  read_count = 0;
  {
    LogReader r(path, ro);
    while (std::optional<Event> e = r.next()) ++read_count;
  }
  auto [owned_wall, owned_cpu] = t.elapsed();
  rows.push_back({"LogReader " + tag, mb / owned_wall, mb / owned_cpu,
                  fmt::format("{} records, next() (caller owns each event)", read_count)});

  // Peers on the same raw bytes, in 256 KiB blocks like the log's chunks.
  constexpr size_t kBlock = 256 * 1024;
  ZstdCompressor zc(1);
  std::vector<std::vector<uint8_t>> blocks;
  t = Timer();
  for (size_t at = 0; at < raw.size(); at += kBlock) {
    std::vector<uint8_t> out;
    zc.compress_append(std::span(raw).subspan(at, std::min(kBlock, raw.size() - at)), out);
    blocks.push_back(std::move(out));
  }
  auto [zc_wall, zc_cpu] = t.elapsed();
  rows.push_back({"  peer: zstd -1 compress " + tag, mb / zc_wall, mb / zc_cpu, ""});
  t = Timer();
  for (size_t i = 0, at = 0; i < blocks.size(); ++i, at += kBlock)
    zstd_decompress(blocks[i], std::min(kBlock, raw.size() - at));
  auto [zd_wall, zd_cpu] = t.elapsed();
  rows.push_back({"  peer: zstd decompress " + tag, mb / zd_wall, mb / zd_cpu, ""});
  auto raw_path = dir / "bench.raw";
  t = Timer();
  FILE* f = fopen(raw_path.c_str(), "wb");
  fwrite(raw.data(), 1, raw.size(), f);
  fclose(f);
  auto [fw_wall, fw_cpu] = t.elapsed();
  rows.push_back({"  peer: fwrite raw " + tag, mb / fw_wall, mb / fw_cpu, ""});
  std::filesystem::remove(raw_path);
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) {
  size_t scale = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1;
  std::string tmpl = (std::filesystem::temp_directory_path() / "librr-bench-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return 1;
  std::filesystem::path dir = tmpl;
  auto small = small_mix(2'000'000 * scale);
  auto async = async_mix(40'000 * scale);
  std::vector<Row> rows;
  for (bool enc : {false, true}) {
    run("small Input/Interrupt", small, dir, enc, rows);
    run("AsyncPosition 1-4KiB", async, dir, enc, rows);
  }
  fmt::print("{:<46} {:>9} {:>9}  {}\n", "measurement (raw record bytes)", "MB/s wall", "MB/CPU-s",
             "notes");
  for (const auto& r : rows)
    fmt::print("{:<46} {:>9.0f} {:>9.0f}  {}\n", r.name, r.wall_mb_s, r.cpu_mb_s, r.note);
  fmt::print(
      "targets: writer >= 200 MB/s, reader >= 500 MB/s of raw records on one core "
      "(MB/CPU-s counts all threads)\n");
  std::filesystem::remove_all(dir);
}
