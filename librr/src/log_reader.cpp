// LogReader: opens a log, checks the key, loads or rebuilds the chunk index,
// and iterates records chunk by chunk through logchunk::ChunkSource.
#include <algorithm>
#include <array>
#include <span>

#include "librr/log.h"
#include "log_chunk.h"
#include "log_format.h"
#include "log_io.h"

namespace librr {

using logchunk::Expectation;
using logchunk::LoadedChunk;

struct LogReader::Impl {
  std::filesystem::path path;
  LogReaderOptions options;
  logio::UniqueFd fd;
  logfmt::FileHeader file_header;
  Digest file_header_hash{};
  LogInfo info;
  std::vector<ChunkIndexEntry> index;
  IndexStatus index_status = IndexStatus::loaded;
  std::optional<logchunk::ChunkSource> source;

  // Iteration state: the chunk to load next and what it must link to.
  Expectation expect;
  bool saw_final = false;
  bool finished = false;
  // The loaded chunk's records not yet consumed, checked but still encoded
  // (they live in the ChunkSource's reused buffer). Each is decoded when
  // iteration reaches it, into the recycled event of its type: one slot per
  // type, so interleaved types keep their buffers and the steady state
  // allocates nothing.
  std::span<const uint8_t> records;
  uint32_t records_left = 0;
  std::array<Event, kEventTypeCount> slots;
  Event* front = nullptr;  // the first record of `records`, once decoded
  uint64_t next_record = 0;
  std::optional<LogProblem> problem;

  void open_file();
  void check_key() const;
  void load_or_rebuild_index();
  bool index_matches(const LogIndex& idx) const;
  std::vector<ChunkIndexEntry> scan_index();

  void rewind() {
    expect = Expectation{0, info.header_size, 0, file_header_hash, std::nullopt};
    saw_final = false;
    finished = false;
    drop_records();
    next_record = 0;
    problem.reset();
  }

  void finish(LogProblemKind kind, std::string message) {
    problem = LogProblem{kind, expect.sequence, expect.offset, std::move(message)};
    finished = true;
  }

  void drop_records() {
    records = {};
    records_left = 0;
    front = nullptr;
  }

  // Loads the next chunk into `records`; false at the end or at a problem.
  bool advance_chunk() {
    if (finished) return false;
    if (saw_final) {
      if (expect.offset < info.file_size)
        finish(LogProblemKind::trailing_data, std::to_string(info.file_size - expect.offset) +
                                                  " bytes after the chunk holding EndOfRecording");
      finished = true;
      return false;
    }
    if (expect.offset == info.file_size) {
      finish(LogProblemKind::missing_end,
             "log ends after " + std::to_string(expect.sequence) +
                 " complete chunks without EndOfRecording (the writer did not finish)");
      return false;
    }
    auto result = source->load(expect, index);
    if (auto* p = std::get_if<LogProblem>(&result)) {
      problem = std::move(*p);
      finished = true;
      return false;
    }
    auto& chunk = std::get<LoadedChunk>(result);
    records = chunk.records;
    records_left = chunk.header.record_count;
    front = nullptr;
    saw_final = chunk.header.final();
    expect = Expectation{expect.sequence + 1, chunk.end_offset,
                         chunk.header.first_record_index + chunk.header.record_count,
                         chunk.header_hash, chunk.header.last};
    return true;
  }

  // False at the end of the log or at a problem.
  bool have_record() {
    while (records_left == 0)
      if (!advance_chunk()) return false;
    return true;
  }

  // The first unconsumed record, encoded (its frame was checked on load).
  std::span<const uint8_t> front_bytes() const {
    return records.subspan(logfmt::kRecordFrameSize, logfmt::record_length_at(records, 0));
  }

  void consume_front() {
    records = records.subspan(logfmt::kRecordFrameSize + logfmt::record_length_at(records, 0));
    --records_left;
    front = nullptr;
    ++next_record;
  }

  Event* peek() {
    if (!have_record()) return nullptr;
    if (!front) front = decode_front();
    return front;
  }

  Event* decode_front() {
    auto bytes = front_bytes();
    // The tag is valid: the whole chunk passed check_event on load.
    Event& slot = slots[bytes[0] - 1];
    try {
      decode_event_into(bytes, slot);
    } catch (const FormatError& e) {
      // check_event and decode_event_into walk the same layout, so this is a
      // librr bug rather than a bad file; still stop reading cleanly.
      finish(LogProblemKind::bad_record, "record " + std::to_string(next_record) +
                                             " passed its check but does not decode: " + e.what());
      drop_records();
      return nullptr;
    }
    return &slot;
  }

  // Position of the first unconsumed record, without decoding its payload.
  Position front_position() const {
    Position pos;
    check_event(front_bytes(), pos);
    return pos;
  }

  // Positions iteration at the start of indexed chunk k (k == index.size()
  // means just after the last indexed chunk).
  bool seek_to_chunk(size_t k) {
    rewind();
    if (k == 0) return true;
    const auto& prev = index[k - 1];
    Digest prev_hash{};
    auto h = source->read_header_at(prev.offset, &prev_hash);
    if (!h || h->sequence != k - 1) {
      expect.sequence = k - 1;
      expect.offset = prev.offset;
      finish(LogProblemKind::bad_header,
             "index points at an unreadable chunk header; "
             "delete the .idx file to rebuild it");
      return false;
    }
    expect = Expectation{k, prev.offset + h->header_size + h->stored_length,
                         h->first_record_index + h->record_count, prev_hash, h->last};
    saw_final = h->final();
    next_record = expect.first_record_index;
    return true;
  }
};

void LogReader::Impl::open_file() {
  using K = LogProblemKind;
  fd = logio::open_or_throw(path, O_RDONLY);
  info.file_size = logio::file_size(fd.get(), path);
  auto first = logio::pread_upto(fd.get(), 0, 16, path);
  std::string name = "log " + path.string();
  size_t declared = logfmt::FileHeader::declared_size(first);
  if (declared == 0) {
    bool is_magic_prefix =
        first.size() < 16 &&
        std::equal(first.begin(), first.begin() + std::min<size_t>(first.size(), 8),
                   logfmt::kFileMagic.begin());
    if (is_magic_prefix)
      throw LogFormatError(K::torn_tail, name + ": file ends inside the file header", 0);
    throw LogFormatError(K::bad_file_header, name + ": not a librr log (bad magic)", 0);
  }
  if (declared < logfmt::kFileHeaderMinSize || declared > logfmt::kFileHeaderMaxSize)
    throw LogFormatError(
        K::bad_file_header,
        name + ": file header size " + std::to_string(declared) + " is out of range", 12);
  if (info.file_size < declared)
    throw LogFormatError(K::torn_tail, name + ": file ends inside the file header", 0);
  auto bytes = logio::pread_upto(fd.get(), 0, declared, path);
  try {
    file_header = logfmt::FileHeader::decode(bytes);
  } catch (const FormatError& e) {
    throw LogFormatError(K::bad_file_header, name + ": " + e.what(), e.offset());
  }
  file_header_hash = hash256(bytes);
  info.version_major = file_header.version_major;
  info.version_minor = file_header.version_minor;
  info.mac = file_header.flags & logfmt::kFlagMac;
  info.encrypted = file_header.flags & logfmt::kFlagEncrypted;
  if (info.mac) info.key_fingerprint = to_hex(file_header.key_fingerprint);
  info.created_unix_ns = file_header.created_unix_ns;
  info.creator = file_header.creator;
  info.header_size = declared;
}

void LogReader::Impl::check_key() const {
  const auto& key = options.key;
  if (info.encrypted && !key)
    throw LogKeyError("log is encrypted: a key file is required (" + path.string() + ")");
  if (!key) return;
  if (!info.mac)
    throw LogKeyError("log " + path.string() +
                      " has no MAC (it was written without a key), so it cannot be "
                      "authenticated with the key given");
  std::string fingerprint = to_hex(logfmt::fingerprint_bytes(*key));
  if (fingerprint != info.key_fingerprint)
    throw LogKeyError("wrong key: key fingerprint " + fingerprint + " does not match the log's " +
                      info.key_fingerprint + " (" + path.string() + ")");
}

bool LogReader::Impl::index_matches(const LogIndex& idx) const {
  if (idx.file_header_hash != file_header_hash || idx.log_size != info.file_size) return false;
  uint64_t offset = info.header_size, record = 0;
  for (const auto& c : idx.chunks) {
    // Offsets grow by at least a header; record numbering is contiguous.
    if (c.offset < offset || c.offset >= info.file_size || c.first_record_index != record)
      return false;
    offset = c.offset + file_header.chunk_layout().min_size();
    record += c.record_count;
  }
  return true;
}

std::vector<ChunkIndexEntry> LogReader::Impl::scan_index() {
  std::vector<ChunkIndexEntry> out;
  Expectation e{0, info.header_size, 0, file_header_hash, std::nullopt};
  while (e.offset < info.file_size) {
    auto result = source->load_header(e);
    if (std::holds_alternative<LogProblem>(result)) break;
    const auto& chunk = std::get<LoadedChunk>(result);
    const auto& h = chunk.header;
    out.push_back({e.offset, h.first_record_index, h.record_count, h.first});
    e = Expectation{e.sequence + 1, chunk.end_offset, h.first_record_index + h.record_count,
                    chunk.header_hash, h.last};
    if (h.final()) break;
  }
  return out;
}

void LogReader::Impl::load_or_rebuild_index() {
  auto idx_path = index_path_for(path);
  if (options.use_index) {
    try {
      auto idx = read_log_index(idx_path);
      if (!idx) {
        index_status = IndexStatus::rebuilt_missing;
      } else if (!index_matches(*idx)) {
        index_status = IndexStatus::rebuilt_stale;
      } else {
        index = std::move(idx->chunks);
        index_status = IndexStatus::loaded;
        return;
      }
    } catch (const Error&) {
      index_status = IndexStatus::rebuilt_corrupt;
    }
  } else {
    index_status = IndexStatus::rebuilt_missing;
  }
  index = scan_index();
  if (options.write_index) {
    try {
      write_log_index(idx_path, LogIndex{file_header_hash, info.file_size, index});
    } catch (const Error&) {
      // A read-only directory is fine: the index is only a cache.
    }
  }
}

LogReader::LogReader(const std::filesystem::path& path, LogReaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  auto& s = *impl_;
  s.path = path;
  s.options = std::move(options);
  s.open_file();
  s.check_key();
  s.source.emplace(s.fd.get(), s.path, s.info.file_size, s.file_header, s.options.key);
  s.load_or_rebuild_index();
  s.rewind();
}

LogReader::~LogReader() = default;
LogReader::LogReader(LogReader&&) noexcept = default;
LogReader& LogReader::operator=(LogReader&&) noexcept = default;

const LogInfo& LogReader::info() const { return impl_->info; }
const std::vector<ChunkIndexEntry>& LogReader::chunk_index() const { return impl_->index; }
IndexStatus LogReader::index_status() const { return impl_->index_status; }

std::optional<Event> LogReader::next() {
  auto& s = *impl_;
  Event* event = s.peek();
  if (!event) return std::nullopt;
  std::optional<Event> owned(std::move(*event));  // the slot grows new buffers next time
  s.consume_front();
  return owned;
}

const Event* LogReader::next_ref() {
  auto& s = *impl_;
  const Event* event = s.peek();
  if (event) s.consume_front();
  return event;
}

const std::optional<LogProblem>& LogReader::problem() const { return impl_->problem; }
uint64_t LogReader::next_record_index() const { return impl_->next_record; }

bool LogReader::seek_to_record(uint64_t record) {
  auto& s = *impl_;
  auto it = std::upper_bound(
      s.index.begin(), s.index.end(), record,
      [](uint64_t r, const ChunkIndexEntry& c) { return r < c.first_record_index; });
  size_t k = it == s.index.begin() ? 0 : static_cast<size_t>(it - s.index.begin()) - 1;
  if (!s.seek_to_chunk(k)) return false;
  while (s.next_record < record) {
    if (!s.have_record()) return false;
    // Skipping only walks the length frames: nothing is decoded.
    s.consume_front();
  }
  return s.peek() != nullptr;
}

bool LogReader::seek_to_position(const Position& pos) {
  auto& s = *impl_;
  // Chunks before the last one that starts strictly before `pos` hold only
  // records at or before that chunk's first position, so they can be skipped.
  auto it =
      std::lower_bound(s.index.begin(), s.index.end(), pos,
                       [](const ChunkIndexEntry& c, const Position& p) { return c.first < p; });
  size_t k = it == s.index.begin() ? 0 : static_cast<size_t>(it - s.index.begin()) - 1;
  if (!s.seek_to_chunk(k)) return false;
  while (s.have_record()) {
    if (!(s.front_position() < pos)) return s.peek() != nullptr;
    s.consume_front();
  }
  return false;
}

VerifyReport LogReader::verify() {
  auto& s = *impl_;
  s.rewind();
  VerifyReport report;
  report.encrypted = s.info.encrypted;
  report.authenticated = s.info.mac && s.options.key.has_value();
  while (s.advance_chunk()) {
    ++report.chunk_count;
    report.valid_bytes = s.expect.offset;
    // Every record was checked on load; their summaries are all we need.
    for (; s.records_left > 0; s.consume_front()) {
      Position pos;
      EventType type = check_event(s.front_bytes(), pos);
      ++report.record_count;
      ++report.counts_by_type[static_cast<size_t>(type) - 1];
      if (!report.first) report.first = pos;
      report.last = pos;
      if (type == EventType::end_of_recording) report.terminated = true;
    }
  }
  if (report.chunk_count == 0) report.valid_bytes = s.info.header_size;
  report.problem = s.problem;
  report.ok = !report.problem && report.terminated;
  s.rewind();
  return report;
}

}  // namespace librr
