// Snapshot write/read throughput for guests of 256 MiB and 1 GiB with 5% and
// 50% non-zero pages, next to peers measured in the same run on the same
// data: zstd -3 of the whole raw image (4 MiB chunks, via librr's zstd
// wrapper) and a plain write/read of the raw image. Every write ends with an
// fsync, so the times include getting the bytes to disk.
//
// Usage: bench_librr_snapshot [DIR] [MAX_MIB]   (defaults: $TMPDIR or /tmp, 1024)
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "librr/compress.h"
#include "librr/snapshot.h"

namespace fs = std::filesystem;

namespace {

constexpr size_t kPage = 4096;

class Mapping {
 public:
  explicit Mapping(size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    data_ = static_cast<uint8_t*>(p);
  }
  ~Mapping() { munmap(data_, size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_;
  size_t size_;
};

// Guest-like page contents: a mix of zero words, small integers and random
// words, so zstd finds some but not unlimited redundancy (about 2-3x).
void fill_guest(Mapping& mem, double nonzero_fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution used(nonzero_fraction);
  for (size_t page = 0; page < mem.size() / kPage; ++page) {
    if (!used(rng)) continue;
    auto* words = reinterpret_cast<uint32_t*>(mem.data() + page * kPage);
    for (size_t i = 0; i < kPage / 4; ++i) {
      uint64_t r = rng();
      switch (r & 3) {
        case 0:
        case 1:
          words[i] = 0;
          break;
        case 2:
          words[i] = static_cast<uint32_t>((r >> 8) % 1000);
          break;
        default:
          words[i] = static_cast<uint32_t>(r >> 32);
      }
    }
    words[0] |= 1;  // never an all-zero page by chance
  }
}

// Wall time and this process's CPU time: on a shared, overloaded machine the
// CPU time is the steadier measure of the work itself.
struct Timing {
  double wall = 0, cpu = 0;
};

double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

Timing measure(const std::function<void()>& f) {
  auto start = std::chrono::steady_clock::now();
  double cpu_start = cpu_now();
  f();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
          cpu_now() - cpu_start};
}

class File {
 public:
  File(const fs::path& p, int flags) : fd_(::open(p.c_str(), flags | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw std::runtime_error("cannot open " + p.string());
  }
  ~File() { ::close(fd_); }
  void write_all(const uint8_t* p, size_t n) {
    while (n) {
      ssize_t w = ::write(fd_, p, n);
      if (w <= 0) throw std::runtime_error("write failed");
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void read_all(uint8_t* p, size_t n) {
    while (n) {
      ssize_t r = ::read(fd_, p, n);
      if (r <= 0) throw std::runtime_error("read failed");
      p += r;
      n -= static_cast<size_t>(r);
    }
  }
  void sync() { ::fsync(fd_); }

 private:
  int fd_;
};

struct Row {
  std::string method;
  Timing write, read;
  uint64_t bytes;
};

void print_rows(size_t guest, const std::vector<Row>& rows) {
  const double mib = static_cast<double>(guest) / (1 << 20);
  const double raw_write = rows.back().write.wall;
  for (const auto& r : rows)
    fmt::print("{:<22} {:>8.0f} {:>8.0f} {:>8.0f} {:>8.0f} {:>9.1f} {:>8.3f} {:>8.2f}x\n", r.method,
               mib / r.write.wall, mib / r.write.cpu, mib / r.read.wall, mib / r.read.cpu,
               static_cast<double>(r.bytes) / (1 << 20),
               static_cast<double>(r.bytes) / static_cast<double>(guest), raw_write / r.write.wall);
}

void run_case(const fs::path& dir, size_t guest, double fraction) {
  Mapping mem(guest);
  fill_guest(mem, fraction, 42);
  // Map every page once (untouched pages fault in the shared zero page), so
  // that whichever method runs first does not pay the page faults for the others.
  uint64_t sum = 0;
  for (size_t off = 0; off < guest; off += kPage) sum += mem.data()[off];
  if (sum == 1) fmt::print("");  // keeps the loop from being optimised away
  std::vector<Row> rows;

  const fs::path snap = dir / "bench.rrsnap";
  fs::remove(snap);
  Row librr_row{"librr snapshot", {}, {}, 0};
  librr_row.write = measure([&] {
    librr::SnapshotWriter writer(snap);
    writer.add_memory("ram", 0, mem.data(), guest);
    writer.finish();
  });
  librr_row.bytes = fs::file_size(snap);
  {
    Mapping restored(guest);  // fresh guest RAM: zero pages need no writing
    librr_row.read = measure([&] {
      auto reader = librr::SnapshotReader::open(snap);
      reader.read_memory("ram", restored.data(), guest,
                         librr::SnapshotReader::ZeroPages::kLeaveUntouched);
    });
    if (std::memcmp(restored.data(), mem.data(), guest) != 0)
      throw std::runtime_error("snapshot read back different memory");
  }
  rows.push_back(librr_row);
  fs::remove(snap);

  // Peer: zstd -3 of the whole raw image, zero pages included.
  const fs::path zst = dir / "bench.raw.zst";
  Row zstd_row{"zstd -3 raw image", {}, {}, 0};
  std::vector<uint64_t> chunk_sizes;
  zstd_row.write = measure([&] {
    librr::ZstdCompressor compressor(3);
    File out(zst, O_WRONLY | O_CREAT | O_TRUNC);
    std::vector<uint8_t> buffer;
    for (size_t off = 0; off < guest; off += librr::kSnapshotMaxBlockRaw) {
      buffer.clear();
      size_t n = std::min<size_t>(librr::kSnapshotMaxBlockRaw, guest - off);
      chunk_sizes.push_back(compressor.compress_append({mem.data() + off, n}, buffer));
      out.write_all(buffer.data(), buffer.size());
    }
    out.sync();
  });
  zstd_row.bytes = fs::file_size(zst);
  {
    Mapping restored(guest);
    zstd_row.read = measure([&] {
      File in(zst, O_RDONLY);
      std::vector<uint8_t> buffer;
      size_t off = 0;
      for (uint64_t c : chunk_sizes) {
        buffer.resize(c);
        in.read_all(buffer.data(), c);
        size_t n = std::min<size_t>(librr::kSnapshotMaxBlockRaw, guest - off);
        auto raw = librr::zstd_decompress(buffer, n);
        std::memcpy(restored.data() + off, raw.data(), n);
        off += n;
      }
    });
  }
  rows.push_back(zstd_row);
  fs::remove(zst);

  // Peer: the raw image written and read as is.
  const fs::path raw = dir / "bench.raw";
  Row raw_row{"raw image write/read", {}, {}, guest};
  raw_row.write = measure([&] {
    File out(raw, O_WRONLY | O_CREAT | O_TRUNC);
    out.write_all(mem.data(), guest);
    out.sync();
  });
  {
    Mapping restored(guest);
    raw_row.read = measure([&] {
      File in(raw, O_RDONLY);
      in.read_all(restored.data(), guest);
    });
  }
  rows.push_back(raw_row);
  fs::remove(raw);

  fmt::print("\nguest {} MiB, {:.0f}% non-zero pages\n", guest >> 20, fraction * 100);
  fmt::print("{:<22} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}\n", "method", "wr wall", "wr cpu",
             "rd wall", "rd cpu", "file MiB", "file/RAM", "wr vs raw");
  print_rows(guest, rows);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path();
  size_t max_mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  fmt::print(
      "librr snapshot benchmark in {}\n"
      "Throughput in MiB of guest RAM per second of wall time and of this process's CPU time;\n"
      "writes include fsync; reads of files just written come from the page cache.\n",
      dir.string());
  for (size_t mib : {size_t{256}, size_t{1024}}) {
    if (mib > max_mib) continue;
    for (double fraction : {0.05, 0.50}) run_case(dir, mib << 20, fraction);
  }
}
