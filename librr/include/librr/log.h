#pragma once
// The event log: an append-only, chunked, compressed, hash-chained and
// optionally MAC'd and encrypted file of Event records. Byte layout, recovery
// rules and threat model: schemas/log-format.md.
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/events.h"
#include "librr/log_index.h"
#include "librr/position.h"

namespace librr {

// What is wrong with a log, for reports and for tests that tamper with logs.
enum class LogProblemKind {
  torn_tail,        // the file ends inside a chunk (crash while writing): everything before is fine
  bad_file_header,  // file header magic/checksum/version/flags
  bad_header,       // chunk header magic/checksum/fields
  bad_checksum,     // stored payload does not match its checksum
  bad_chain,  // previous-header hash or sequence mismatch: chunk deleted, reordered or replaced
  bad_mac,    // keyed MAC mismatch: edited by someone without the key
  decrypt_failed,     // secretstream refused the payload
  decompress_failed,  // zstd refused the payload or its size disagrees
  bad_record,         // a record does not decode, or disagrees with its chunk header
  missing_end,        // no EndOfRecording: the writer did not finish (kill -9, power loss)
  trailing_data,      // bytes after the chunk holding EndOfRecording
};
std::string_view log_problem_kind_name(LogProblemKind kind);

struct LogProblem {
  LogProblemKind kind;
  uint64_t chunk_index = 0;  // index of the chunk where it was found (== chunk count at the end)
  uint64_t offset = 0;       // byte offset of that chunk (or of the end of the valid data)
  std::string message;
  std::string to_string() const;  // "bad_mac at chunk 3 (offset 1234): ..."
};

// Thrown by LogReader::open when the file header itself is unusable.
class LogFormatError : public FormatError {
 public:
  LogFormatError(LogProblemKind kind, const std::string& what, int64_t offset)
      : FormatError(what, offset), kind_(kind) {}
  LogProblemKind kind() const { return kind_; }

 private:
  LogProblemKind kind_;
};

// Thrown by LogReader::open for a missing or wrong key.
class LogKeyError : public Error {
 public:
  using Error::Error;
};

// When the log reaches the disk. every_chunk: the header at open and each
// chunk as it is written, then the directory entry. on_close: all of it at
// close() (a recorder starts without waiting for the disk).
enum class FsyncPolicy { never, every_chunk, on_close };

// Log format versions this librr writes and reads (schemas/log-format.md, "Versioning").
inline constexpr uint16_t kLogFormatVersion = 2;        // written by default
inline constexpr uint16_t kOldestLogFormatVersion = 1;  // still read (and written on request)

// When the open chunk is sealed (written), whichever comes first:
//  - it holds `chunk_bytes` raw bytes;
//  - its first record is `chunk_interval` old and it holds `chunk_min_bytes`;
//  - its first record is `chunk_max_age` old.
// Each chunk costs ~200 bytes of header and compression framing, so a quiet
// log seals rarely (an idle guest: one chunk per chunk_max_age), while a busy
// one still reaches the disk every chunk_interval. kill -9 loses at most the
// open chunk: up to chunk_max_age of a quiet log, ~chunk_interval of a busy one.
struct LogWriterOptions {
  std::optional<Key> key;  // when set, every chunk carries a keyed MAC
  bool encrypt = false;    // encrypt payloads with the key (requires key)
  std::chrono::milliseconds chunk_interval{100};
  size_t chunk_min_bytes = 64 * 1024;
  std::chrono::milliseconds chunk_max_age{10'000};
  size_t chunk_bytes = 256 * 1024;
  FsyncPolicy fsync = FsyncPolicy::on_close;
  // kLogFormatVersion, or 1 to write the original format (compatibility tests).
  uint16_t format_version = kLogFormatVersion;
  // zstd level. 6 since chunks are chained (format 2.7): against level 1,
  // 6-9 % smaller logs (spin3, ticks, a Linux boot), at ~100 MB/s on the
  // writer's thread, far above what a recording writes.
  int compression_level = 6;
  size_t max_pending_chunks = 8;  // append() blocks when this many sealed chunks await writing
  bool overwrite = false;         // replace an existing file instead of refusing
  std::string creator;            // free text stored in the file header (e.g. "rr-vmm 0.1")
};

// Appends records to a new log. append() only encodes into a buffer; a
// background thread compresses, encrypts and writes sealed chunks, each with
// one write(). Thread-safe; positions must not decrease.
class LogWriter {
 public:
  LogWriter(const std::filesystem::path& path, LogWriterOptions options = {});
  ~LogWriter();  // closes; errors are swallowed, call close() to see them
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Throws Error if the position goes backwards, after EndOfRecording, after
  // close(), or if the background writer failed (the failure is rethrown).
  void append(const Event& event);
  // Seals the buffered records and waits until every chunk is written.
  void flush();
  // Flushes, fsyncs per policy, writes the index and closes. Idempotent.
  void close();

  uint64_t records_appended() const;
  uint64_t chunks_written() const;
  const std::filesystem::path& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct LogInfo {
  uint16_t version_major = 0, version_minor = 0;
  bool mac = false;
  bool encrypted = false;
  std::string key_fingerprint;  // hex, empty when unkeyed
  uint64_t created_unix_ns = 0;
  std::string creator;
  uint64_t file_size = 0;
  uint64_t header_size = 0;
};

struct VerifyReport {
  bool ok = false;                    // no problem at all, including a final EndOfRecording
  std::optional<LogProblem> problem;  // the first problem; reading stops there
  uint64_t chunk_count = 0;           // complete, valid chunks
  uint64_t record_count = 0;          // records in them
  uint64_t valid_bytes = 0;           // end offset of the last valid chunk
  std::array<uint64_t, kEventTypeCount> counts_by_type{};  // indexed by EventType - 1
  std::optional<Position> first, last;
  bool terminated = false;     // an EndOfRecording was read
  bool authenticated = false;  // MACs were checked with the key
  bool encrypted = false;
  std::string to_string() const;  // multi-line human summary
};

enum class IndexStatus { loaded, rebuilt_missing, rebuilt_stale, rebuilt_corrupt };
std::string_view index_status_name(IndexStatus status);

struct LogReaderOptions {
  std::optional<Key> key;   // required for encrypted logs; enables MAC checks
  bool use_index = true;    // read <log>.idx (else scan chunk headers)
  bool write_index = true;  // rewrite <log>.idx after a rebuild (failures are ignored)
};

// Reads a log: verification, sequential iteration, random access. Iteration
// stops at the first problem and problem() says why; every record returned
// before that belongs to a fully verified chunk.
class LogReader {
 public:
  // Throws SystemError, LogFormatError (unusable file header) or LogKeyError.
  explicit LogReader(const std::filesystem::path& path, LogReaderOptions options = {});
  ~LogReader();
  LogReader(LogReader&&) noexcept;
  LogReader& operator=(LogReader&&) noexcept;

  const LogInfo& info() const;
  const std::vector<ChunkIndexEntry>& chunk_index() const;
  IndexStatus index_status() const;

  // Reads the whole log from the start; afterwards iteration restarts at record 0.
  VerifyReport verify();

  // The next record, or nullopt at the end or at a problem. The caller owns
  // it, which costs an allocation per record for records with payloads.
  std::optional<Event> next();
  // The next record without copying it, or nullptr at the end or at a
  // problem: the reader decodes it into an event it recycles, so it is valid
  // only until the next call to next(), next_ref(), a seek or verify(). The
  // fast way to scan a log (no allocation per record once warmed up).
  const Event* next_ref();
  // Why next() returned nullopt: nullopt after a clean EndOfRecording,
  // missing_end for an unterminated log, or the problem that stopped reading.
  const std::optional<LogProblem>& problem() const;
  uint64_t next_record_index() const;

  // Random access through the chunk index. seek_to_record(n) makes next()
  // return record n; seek_to_position(p) the first record whose position is
  // >= p. Both return false (and leave next() at the end) when no such
  // record exists in the indexed chunks.
  bool seek_to_record(uint64_t index);
  bool seek_to_position(const Position& pos);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace librr
