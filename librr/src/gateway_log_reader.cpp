#include "librr/gateway_log_reader.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <zstd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "librr/bytes.h"
#include "librr/error.h"

namespace librr {
namespace {

constexpr uint32_t kEnhancedPacketBlock = 6;

int64_t digest_prefix(const Digest& digest) {
  uint64_t prefix = 0;
  for (int i = 0; i < 8; ++i) prefix = prefix << 8 | digest[static_cast<size_t>(i)];
  return static_cast<int64_t>(prefix);
}

std::vector<uint8_t> decompress_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("gateway log: cannot read {}", path.string()));
  std::vector<uint8_t> compressed{std::istreambuf_iterator<char>(in), {}};
  std::vector<uint8_t> out;
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> stream(ZSTD_createDStream(),
                                                                  ZSTD_freeDStream);
  ZSTD_inBuffer input{compressed.data(), compressed.size(), 0};
  std::vector<uint8_t> chunk(ZSTD_DStreamOutSize());
  while (input.pos < input.size) {
    ZSTD_outBuffer output{chunk.data(), chunk.size(), 0};
    size_t rc = ZSTD_decompressStream(stream.get(), &output, &input);
    if (ZSTD_isError(rc))
      throw FormatError(fmt::format("gateway log {}: {}", path.string(), ZSTD_getErrorName(rc)),
                        static_cast<int64_t>(input.pos));
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<long>(output.pos));
  }
  return out;
}

}  // namespace

std::string gateway_segment_file_name(uint64_t number) {
  return fmt::format("seg-{:06d}.pcapng.zst", number);
}

std::string gateway_segment_partial_file_name(uint64_t number) {
  return gateway_segment_file_name(number) + ".part";
}

struct GatewayLogReader::Index {
  sqlite3* db = nullptr;
  sqlite3_stmt* lookup = nullptr;

  explicit Index(const std::filesystem::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::string message = db ? sqlite3_errmsg(db) : "out of memory";
      sqlite3_close(db);
      throw Error(fmt::format("gateway log: cannot open {}: {}", path.string(), message));
    }
    sqlite3_busy_timeout(db, 5000);  // the gateway may be committing
    const char* sql =
        "SELECT segment, pcapng_offset, captured_length FROM frames "
        "WHERE digest_prefix = ?1 AND digest = ?2 ORDER BY segment, ordinal LIMIT 1";
    if (sqlite3_prepare_v2(db, sql, -1, &lookup, nullptr) != SQLITE_OK) {
      std::string message = sqlite3_errmsg(db);
      sqlite3_close(db);
      throw Error(
          fmt::format("gateway log {}: not an rr-gateway index: {}", path.string(), message));
    }
  }
  ~Index() {
    sqlite3_finalize(lookup);
    sqlite3_close(db);
  }
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;
};

GatewayLogReader::GatewayLogReader(const std::filesystem::path& directory)
    : directory_(directory), index_(std::make_unique<Index>(directory / kGatewayIndexFileName)) {}

GatewayLogReader::~GatewayLogReader() = default;

const std::vector<uint8_t>& GatewayLogReader::segment_bytes(uint64_t segment) {
  if (segment == cached_segment_ && !cached_bytes_.empty()) return cached_bytes_;
  auto path = directory_ / gateway_segment_file_name(segment);
  // A segment still being written (or left by a crash) has the .part suffix;
  // its complete zstd frames hold every frame the index already lists.
  if (!std::filesystem::exists(path))
    path = directory_ / gateway_segment_partial_file_name(segment);
  cached_bytes_ = decompress_file(path);
  cached_segment_ = segment;
  return cached_bytes_;
}

std::optional<std::vector<uint8_t>> GatewayLogReader::find(const Digest& digest) {
  sqlite3_reset(index_->lookup);
  sqlite3_bind_int64(index_->lookup, 1, digest_prefix(digest));
  sqlite3_bind_blob(index_->lookup, 2, digest.data(), static_cast<int>(digest.size()),
                    SQLITE_STATIC);
  int rc = sqlite3_step(index_->lookup);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW)
    throw Error(fmt::format("gateway log {}: index lookup: {}", directory_.string(),
                            sqlite3_errmsg(index_->db)));
  uint64_t segment = static_cast<uint64_t>(sqlite3_column_int64(index_->lookup, 0));
  uint64_t offset = static_cast<uint64_t>(sqlite3_column_int64(index_->lookup, 1));
  uint32_t captured = static_cast<uint32_t>(sqlite3_column_int64(index_->lookup, 2));
  sqlite3_reset(index_->lookup);

  const auto& bytes = segment_bytes(segment);
  auto where = fmt::format("gateway log {} segment {}", directory_.string(), segment);
  if (offset > bytes.size())
    throw FormatError(where + ": index offset past the end of the segment",
                      static_cast<int64_t>(offset));
  ByteReader block(std::span<const uint8_t>(bytes).subspan(offset), "enhanced packet block");
  // EPB: type, total length, interface id, timestamp high/low, captured and original length, data.
  if (block.u32() != kEnhancedPacketBlock)
    throw FormatError(where + ": index points at a block that is not an EPB",
                      static_cast<int64_t>(offset));
  block.u32();
  block.u32();
  block.u64();
  uint32_t captured_length = block.u32();
  block.u32();
  if (captured_length != captured)
    throw FormatError(
        fmt::format("{}: EPB holds {} bytes, the index says {}", where, captured_length, captured),
        static_cast<int64_t>(offset));
  auto data = block.raw(captured_length);
  std::vector<uint8_t> frame(data.begin(), data.end());
  if (!digests_equal(hash256(frame), digest))
    throw FormatError(where + ": the frame at the indexed offset has another digest",
                      static_cast<int64_t>(offset));
  return frame;
}

}  // namespace librr
