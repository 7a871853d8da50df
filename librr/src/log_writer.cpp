// LogWriter: append() encodes records into the open chunk under a mutex; a
// background thread seals chunks by size or age, compresses, encrypts and
// writes each with one write(). Keeping zstd and the crypto off the caller's
// thread is what makes append() cheap enough for a VMM's exit path.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "librr/compress.h"
#include "librr/log.h"
#include "librr/page_delta.h"
#include "librr/version.h"
#include "log_compact.h"
#include "log_format.h"
#include "log_io.h"

namespace librr {

static_assert(logfmt::kVersionMajor == kLogFormatVersion &&
              logfmt::kOldestVersionMajor == kOldestLogFormatVersion);

namespace {

struct SealedChunk {
  std::vector<uint8_t> raw;
  uint64_t first_record_index = 0;
  uint32_t record_count = 0;
  Position first, last;
  bool final = false;
};

using Clock = std::chrono::steady_clock;

}  // namespace

struct LogWriter::Impl {
  std::filesystem::path path;
  LogWriterOptions options;
  logio::UniqueFd fd;
  std::optional<StreamEncryptor> encryptor;
  ZstdCompressor compressor;
  std::vector<uint8_t> compact;           // reused by the background thread (format 2 payloads)
  std::vector<uint8_t> previous_payload;  // the last chunk's, the next one's zstd prefix (2.7)

  // Written only by the background thread (and read after it is joined).
  Digest prev_hash{};
  Digest file_header_hash{};
  uint64_t file_offset = 0;
  uint64_t next_sequence = 0;
  std::vector<ChunkIndexEntry> index;

  std::mutex mutex;
  std::condition_variable work_ready;  // background thread waits here
  std::condition_variable progress;    // appenders (back-pressure) and flush() wait here
  SealedChunk open_chunk;              // guarded by mutex
  Clock::time_point open_since;
  std::deque<SealedChunk> queue;
  uint64_t records = 0;
  uint16_t version_major = 0, version_minor = 0;  // of the file header written
  logfmt::ChunkLayout layout;                     // of the chunk headers, from the file header
  Position last_pos;  // of the last record appended, for the order check
  uint64_t sealed = 0, written = 0;
  bool ended = false;     // EndOfRecording appended
  bool stopping = false;  // close() asked the thread to drain and exit
  bool closed = false;
  std::exception_ptr failure;
  std::thread thread;

  Impl(const std::filesystem::path& p, LogWriterOptions o)
      : path(p), options(std::move(o)), compressor(options.compression_level) {}

  // When the open chunk must be sealed by age (see LogWriterOptions).
  Clock::time_point seal_deadline_locked() const {
    const bool big_enough = open_chunk.raw.size() >= options.chunk_min_bytes;
    return open_since + (big_enough ? std::min(options.chunk_interval, options.chunk_max_age)
                                    : options.chunk_max_age);
  }

  void seal_locked() {
    if (open_chunk.record_count == 0) return;
    queue.push_back(std::move(open_chunk));
    open_chunk = SealedChunk{};
    open_chunk.first_record_index = records;
    ++sealed;
    work_ready.notify_one();
  }

  void write_chunk(const SealedChunk& chunk) {
    // Format 2 stores the records compactly; in memory they stay u32-framed.
    std::span<const uint8_t> payload = chunk.raw;
    if (options.format_version >= 2) {
      compact.clear();
      logcompact::compact_records(chunk.raw, chunk.first, compact,
                                  logfmt::has_clock_deltas(version_major, version_minor));
      payload = compact;
    }
    std::vector<uint8_t> compressed;
    compressor.compress_append(payload, compressed,
                               logfmt::chunk_has_prefix(version_major, version_minor, next_sequence)
                                   ? std::span<const uint8_t>(previous_payload)
                                   : std::span<const uint8_t>());
    if (logfmt::chunk_has_prefix(version_major, version_minor, next_sequence + 1))
      previous_payload.assign(payload.begin(), payload.end());
    std::vector<uint8_t> stored =
        encryptor ? encryptor->seal(compressed, chunk.final) : std::move(compressed);

    logfmt::ChunkHeader h;
    h.flags = chunk.final ? logfmt::kChunkFlagFinal : 0;
    h.sequence = next_sequence;
    h.first_record_index = chunk.first_record_index;
    h.record_count = chunk.record_count;
    h.raw_length = static_cast<uint32_t>(payload.size());
    h.stored_length = static_cast<uint32_t>(stored.size());
    h.first = chunk.first;
    h.last = chunk.last;
    h.payload_checksum = checksum64(stored);
    h.prev_hash = prev_hash;
    if (options.key) h.mac = logfmt::chunk_mac(*options.key, h.encode(layout), layout, stored);
    auto header = h.encode(layout);

    std::vector<uint8_t> out;
    out.reserve(header.size() + stored.size());
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), stored.begin(), stored.end());
    logio::write_all(fd.get(), out, path);
    if (options.fsync == FsyncPolicy::every_chunk) logio::fsync_or_throw(fd.get(), path);

    index.push_back({file_offset, h.first_record_index, h.record_count, h.first});
    prev_hash = hash256(header);
    file_offset += out.size();
    ++next_sequence;
  }

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      if (queue.empty() && !stopping) {
        if (open_chunk.record_count == 0) {
          work_ready.wait(lock);
        } else if (const auto deadline = seal_deadline_locked(); Clock::now() >= deadline) {
          seal_locked();
        } else {
          // Woken early by an append that moved the deadline, or by new work:
          // the loop recomputes it.
          work_ready.wait_until(lock, deadline);
        }
        continue;
      }
      if (queue.empty()) return;  // stopping and drained
      SealedChunk chunk = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      try {
        write_chunk(chunk);
      } catch (...) {
        lock.lock();
        failure = std::current_exception();
        queue.clear();
        progress.notify_all();
        return;
      }
      lock.lock();
      ++written;
      progress.notify_all();
    }
  }

  void rethrow_failure_locked() {
    if (failure) std::rethrow_exception(failure);
  }
};

namespace {

// The oldest log format able to hold a record, and what in it needs that
// format. Readers of an older version refuse such a record (or, for the
// kernel-entry tail, would take it for trailing bytes), so a writer asked
// for that older version must not write it.
struct FormatNeed {
  uint16_t major = 1, minor = 0;
  const char* what = nullptr;
};

FormatNeed format_needed_by(const Event& event) {
  const auto* async = std::get_if<AsyncPosition>(&event);
  if (!async) return {};
  if (const auto* searched = std::get_if<SearchedStop>(&async->memory)) {
    if (searched->pages_implied)
      return {2, 12, "a searched stop with implied pages (memory kind 9)"};
    if (searched->one_hash) return {2, 11, "a searched stop with one hash (memory kind 7)"};
    return searched->hash_bits == 32
               ? FormatNeed{2, 10, "a searched stop with 32-bit hashes (memory kind 6)"}
               : FormatNeed{2, 9, "a searched stop without its vCPU state (memory kind 5)"};
  }
  if (const auto* kernel_return = std::get_if<KernelReturn>(&async->memory))
    return kernel_return->hash_bits == 32
               ? FormatNeed{2, 11, "a kernel-return stop with a 32-bit hash (memory kind 8)"}
               : FormatNeed{2, 8, "a kernel-return stop (memory kind 4)"};
  if (std::holds_alternative<PagesDigest>(async->memory))
    return {2, 3, "a pages digest (memory kind 3)"};
  const auto* delta = std::get_if<MemoryDelta>(&async->memory);
  if (delta && delta->base == DeltaBase::return_to_user)
    return {2, 13, "a memory delta against the kernel's return to user mode (memory kind 10)"};
  if (async->kernel_entries) return {2, 2, "a kernel-entry count"};
  if (delta && std::any_of(delta->pages.begin(), delta->pages.end(), [](const PageDelta& page) {
        const PageForm form = page_form(page);
        return form == PageForm::copied_range || form == PageForm::filled_range;
      }))
    return {2, 6, "a page coded as a copied or filled range"};
  if (delta && std::any_of(delta->pages.begin(), delta->pages.end(), is_literal_page))
    return {2, 4, "a literal page (the page's new content)"};
  if (delta && delta->base == DeltaBase::previous_position)
    return {2, 1, "a memory delta against the previous position (memory kind 2)"};
  return {};
}

std::string version_text(uint16_t major, uint16_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace

LogWriter::LogWriter(const std::filesystem::path& path, LogWriterOptions options)
    : impl_(std::make_unique<Impl>(path, std::move(options))) {
  auto& o = impl_->options;
  if (o.encrypt && !o.key) throw Error("log " + path.string() + ": encryption requires a key");
  if (o.chunk_bytes == 0 || o.chunk_bytes > logfmt::kMaxRecordSize)
    throw Error("chunk_bytes must be between 1 and " + std::to_string(logfmt::kMaxRecordSize));
  if (o.max_pending_chunks == 0) o.max_pending_chunks = 1;
  if (o.format_version < kOldestLogFormatVersion || o.format_version > kLogFormatVersion)
    throw Error("log " + path.string() + ": cannot write log format version " +
                std::to_string(o.format_version) + " (this librr writes " +
                std::to_string(kOldestLogFormatVersion) + " to " +
                std::to_string(kLogFormatVersion) + ")");

  logfmt::FileHeader header;
  header.version_major = o.format_version;
  header.version_minor = o.format_version == logfmt::kVersionMajor ? logfmt::kVersionMinor : 0;
  impl_->version_major = header.version_major;
  impl_->version_minor = header.version_minor;
  if (o.key) {
    header.flags |= logfmt::kFlagMac;
    header.key_fingerprint = logfmt::fingerprint_bytes(*o.key);
  }
  if (o.encrypt) {
    impl_->encryptor.emplace(*o.key);
    header.flags |= logfmt::kFlagEncrypted;
    header.stream_header = impl_->encryptor->header();
  }
  header.created_unix_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  header.creator = o.creator.empty() ? "librr " + std::string(library_version()) : o.creator;
  if (header.creator.size() > logfmt::kFileHeaderMaxSize - logfmt::kFileHeaderMinSize)
    header.creator.resize(logfmt::kFileHeaderMaxSize - logfmt::kFileHeaderMinSize);
  auto header_bytes = header.encode();
  impl_->layout = header.chunk_layout();

  int flags = O_WRONLY | O_CREAT | (o.overwrite ? O_TRUNC : O_EXCL);
  impl_->fd = logio::open_or_throw(path, flags);
  // A stale index from an earlier log at this path would only be rebuilt by
  // readers; removing it now keeps the directory honest.
  std::error_code ec;
  std::filesystem::remove(index_path_for(path), ec);
  logio::write_all(impl_->fd.get(), header_bytes, path);
  if (o.fsync == FsyncPolicy::every_chunk) {
    logio::fsync_or_throw(impl_->fd.get(), path);
    logio::fsync_parent_dir(path);
  }
  impl_->file_header_hash = hash256(header_bytes);
  impl_->prev_hash = impl_->file_header_hash;
  impl_->file_offset = header_bytes.size();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

LogWriter::~LogWriter() {
  try {
    close();
  } catch (...) {
    // Destructors must not throw; close() explicitly to see the error.
  }
}

void LogWriter::append(const Event& event) {
  auto& s = *impl_;
  if (const FormatNeed need = format_needed_by(event);
      std::pair(need.major, need.minor) > std::pair(s.version_major, s.version_minor))
    throw Error("log " + s.path.string() + ": " + std::string(event_type_name(event_type(event))) +
                " at " + event_position(event).to_string() + " holds " + need.what +
                ", which needs log format " + version_text(need.major, need.minor) +
                "; this log is written as format " +
                version_text(s.version_major, s.version_minor));
  ByteWriter encoded;
  encode_event(event, encoded);
  if (encoded.size() > logfmt::kMaxRecordSize)
    throw Error("log " + s.path.string() + ": record of " + std::to_string(encoded.size()) +
                " bytes exceeds the limit of " + std::to_string(logfmt::kMaxRecordSize));
  const Position& pos = event_position(event);
  bool is_end = std::holds_alternative<EndOfRecording>(event);

  std::unique_lock lock(s.mutex);
  s.rethrow_failure_locked();
  if (s.closed || s.stopping) throw Error("log " + s.path.string() + ": append after close");
  if (s.ended) throw Error("log " + s.path.string() + ": append after EndOfRecording");
  auto& chunk = s.open_chunk;
  if (s.records > 0 && pos < s.last_pos)
    throw Error("log " + s.path.string() + ": position " + pos.to_string() +
                " is before the previous record's " + s.last_pos.to_string());
  if (chunk.record_count == 0) {
    chunk.first_record_index = s.records;
    chunk.first = pos;
    s.open_since = Clock::now();
    s.work_ready.notify_one();  // start the age timer
  }
  const bool was_small = chunk.raw.size() < s.options.chunk_min_bytes;
  uint32_t len = static_cast<uint32_t>(encoded.size());
  const auto* len_bytes = reinterpret_cast<const uint8_t*>(&len);
  chunk.raw.insert(chunk.raw.end(), len_bytes, len_bytes + sizeof len);
  chunk.raw.insert(chunk.raw.end(), encoded.data().begin(), encoded.data().end());
  chunk.last = pos;
  s.last_pos = pos;
  ++chunk.record_count;
  ++s.records;
  if (is_end) {
    chunk.final = true;
    s.ended = true;
  }
  if (chunk.raw.size() >= s.options.chunk_bytes || is_end) {
    s.seal_locked();
  } else if (was_small && chunk.raw.size() >= s.options.chunk_min_bytes) {
    s.work_ready.notify_one();  // the age deadline moved closer
  }
  // Back-pressure: never hold more than max_pending_chunks sealed chunks in memory.
  s.progress.wait(lock,
                  [&] { return s.queue.size() <= s.options.max_pending_chunks || s.failure; });
  s.rethrow_failure_locked();
}

void LogWriter::flush() {
  auto& s = *impl_;
  std::unique_lock lock(s.mutex);
  s.rethrow_failure_locked();
  if (s.closed) return;
  s.seal_locked();
  uint64_t target = s.sealed;
  s.progress.wait(lock, [&] { return s.written >= target || s.failure; });
  s.rethrow_failure_locked();
}

void LogWriter::close() {
  auto& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.closed) return;
    s.closed = true;
    s.seal_locked();
    s.stopping = true;
    s.work_ready.notify_one();
  }
  s.thread.join();
  if (s.failure) {
    s.fd.reset();
    std::rethrow_exception(s.failure);
  }
  if (s.options.fsync != FsyncPolicy::never) logio::fsync_or_throw(s.fd.get(), s.path);
  if (s.options.fsync == FsyncPolicy::on_close) logio::fsync_parent_dir(s.path);
  s.fd.close_checked(s.path.string());
  LogIndex index{s.file_header_hash, s.file_offset, std::move(s.index)};
  write_log_index(index_path_for(s.path), index);
}

uint64_t LogWriter::records_appended() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->records;
}

uint64_t LogWriter::chunks_written() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->written;
}

const std::filesystem::path& LogWriter::path() const { return impl_->path; }

}  // namespace librr
