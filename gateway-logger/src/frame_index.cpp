#include "frame_index.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>

#include "segment_file.h"

namespace gateway {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS segments (
  segment INTEGER PRIMARY KEY,
  file TEXT NOT NULL,
  opened_ns INTEGER NOT NULL,
  closed_ns INTEGER,
  frames INTEGER,
  pcapng_bytes INTEGER,
  compressed_bytes INTEGER
);
CREATE TABLE IF NOT EXISTS frames (
  segment INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  pcapng_offset INTEGER NOT NULL,
  timestamp_ns INTEGER NOT NULL,
  interface TEXT NOT NULL,
  wire_length INTEGER NOT NULL,
  captured_length INTEGER NOT NULL,
    digest BLOB NOT NULL,
  direction TEXT NOT NULL,
  digest_prefix INTEGER NOT NULL,
  PRIMARY KEY (segment, ordinal)
);
CREATE INDEX IF NOT EXISTS frames_by_digest ON frames (digest_prefix);
)sql";

// Releases a prepared statement on every path out of a scope.
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

int64_t as_int(uint64_t v) { return static_cast<int64_t>(v); }

// The first 8 digest bytes as a (big-endian) integer: an index on it is much
// cheaper to maintain than one on the 32-byte blob (digests are random keys),
// and it is as selective in practice; lookups compare the full digest too.
int64_t digest_prefix(const librr::Digest& digest) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | digest[static_cast<size_t>(i)];
  return static_cast<int64_t>(v);
}

}  // namespace

FrameIndex::FrameIndex(const std::filesystem::path& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK)
    fail("cannot open");
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  // Digests are random keys: the digest index touches pages all over the file.
  // A 64 MiB page cache keeps them in memory instead of re-reading them per insert.
  exec("PRAGMA cache_size=-65536");
  exec("PRAGMA wal_autocheckpoint=8192");
  exec(kSchema);
  if (sqlite3_prepare_v2(
          db_,
          "INSERT INTO frames (segment, ordinal, pcapng_offset, timestamp_ns, "
          "interface, wire_length, captured_length, digest, direction, digest_prefix) "
          "VALUES (?,?,?,?,?,?,?,?,?,?)",
          -1, &insert_, nullptr) != SQLITE_OK)
    fail("cannot prepare insert");
}

FrameIndex::~FrameIndex() {
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

void FrameIndex::fail(const std::string& what) const {
  int code = db_ ? sqlite3_errcode(db_) : SQLITE_CANTOPEN;
  int error_number = code == SQLITE_FULL ? ENOSPC : EIO;
  throw WriteError(fmt::format("index {}: {}: {}", path_.string(), what,
                               db_ ? sqlite3_errmsg(db_) : "out of memory"),
                   error_number);
}

void FrameIndex::exec(const char* sql) const {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "?";
    sqlite3_free(message);
    fail(fmt::format("'{}' failed ({})", std::string_view(sql).substr(0, 40), text));
  }
}

void FrameIndex::segment_opened(uint64_t segment, const std::string& file, uint64_t opened_ns) {
  Statement s;
  if (sqlite3_prepare_v2(
          db_, "INSERT OR REPLACE INTO segments (segment, file, opened_ns) VALUES (?,?,?)", -1,
          &s.stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare segment insert");
  sqlite3_bind_int64(s.stmt, 1, as_int(segment));
  sqlite3_bind_text(s.stmt, 2, file.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.stmt, 3, as_int(opened_ns));
  if (sqlite3_step(s.stmt) != SQLITE_DONE) fail("cannot record segment");
}

void FrameIndex::segment_closed(uint64_t segment, const std::string& file, uint64_t closed_ns,
                                uint64_t frames, uint64_t pcapng_bytes, uint64_t compressed_bytes) {
  Statement s;
  if (sqlite3_prepare_v2(db_,
                         "UPDATE segments SET file=?, closed_ns=?, frames=?, pcapng_bytes=?, "
                         "compressed_bytes=? WHERE segment=?",
                         -1, &s.stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare segment update");
  sqlite3_bind_text(s.stmt, 1, file.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.stmt, 2, as_int(closed_ns));
  sqlite3_bind_int64(s.stmt, 3, as_int(frames));
  sqlite3_bind_int64(s.stmt, 4, as_int(pcapng_bytes));
  sqlite3_bind_int64(s.stmt, 5, as_int(compressed_bytes));
  sqlite3_bind_int64(s.stmt, 6, as_int(segment));
  if (sqlite3_step(s.stmt) != SQLITE_DONE) fail("cannot record segment close");
}

void FrameIndex::insert(const std::vector<IndexedFrame>& frames) {
  if (frames.empty()) return;
  exec("BEGIN");
  for (const auto& f : frames) {
    sqlite3_reset(insert_);
    sqlite3_bind_int64(insert_, 1, as_int(f.segment));
    sqlite3_bind_int64(insert_, 2, as_int(f.ordinal));
    sqlite3_bind_int64(insert_, 3, as_int(f.pcapng_offset));
    sqlite3_bind_int64(insert_, 4, as_int(f.timestamp_ns));
    sqlite3_bind_text(insert_, 5, f.interface.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(insert_, 6, f.wire_length);
    sqlite3_bind_int64(insert_, 7, f.captured_length);
    sqlite3_bind_blob(insert_, 8, f.digest.data(), static_cast<int>(f.digest.size()),
                      SQLITE_STATIC);
    sqlite3_bind_text(insert_, 9, f.direction.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(insert_, 10, digest_prefix(f.digest));
    if (sqlite3_step(insert_) != SQLITE_DONE) {
      std::string message = sqlite3_errmsg(db_);
      int code = sqlite3_errcode(db_);
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw WriteError(fmt::format("index {}: insert of segment {} frame {} failed: {}",
                                   path_.string(), f.segment, f.ordinal, message),
                       code == SQLITE_FULL ? ENOSPC : EIO);
    }
  }
  sqlite3_reset(insert_);
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(db_);
    int code = sqlite3_errcode(db_);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw WriteError(fmt::format("index {}: commit failed: {}", path_.string(), message),
                     code == SQLITE_FULL ? ENOSPC : EIO);
  }
}

std::vector<IndexedFrame> FrameIndex::all_frames() const {
  Statement s;
  if (sqlite3_prepare_v2(db_,
                         "SELECT segment, ordinal, pcapng_offset, timestamp_ns, interface, "
                         "wire_length, captured_length, digest, direction FROM frames "
                         "ORDER BY segment, ordinal",
                         -1, &s.stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare select");
  std::vector<IndexedFrame> rows;
  while (sqlite3_step(s.stmt) == SQLITE_ROW) {
    IndexedFrame f;
    f.segment = static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 0));
    f.ordinal = static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 1));
    f.pcapng_offset = static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 2));
    f.timestamp_ns = static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 3));
    f.interface = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 4));
    f.wire_length = static_cast<uint32_t>(sqlite3_column_int64(s.stmt, 5));
    f.captured_length = static_cast<uint32_t>(sqlite3_column_int64(s.stmt, 6));
    auto* blob = static_cast<const uint8_t*>(sqlite3_column_blob(s.stmt, 7));
    int size = sqlite3_column_bytes(s.stmt, 7);
    if (blob && size == static_cast<int>(f.digest.size()))
      std::copy_n(blob, f.digest.size(), f.digest.begin());
    f.direction = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 8));
    rows.push_back(std::move(f));
  }
  return rows;
}

uint64_t FrameIndex::count_digest(const librr::Digest& digest) const {
  Statement s;
  if (sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM frames WHERE digest_prefix = ? AND digest = ?",
                         -1, &s.stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare count");
  sqlite3_bind_int64(s.stmt, 1, digest_prefix(digest));
  sqlite3_bind_blob(s.stmt, 2, digest.data(), static_cast<int>(digest.size()), SQLITE_STATIC);
  if (sqlite3_step(s.stmt) != SQLITE_ROW) fail("count failed");
  return static_cast<uint64_t>(sqlite3_column_int64(s.stmt, 0));
}

}  // namespace gateway
