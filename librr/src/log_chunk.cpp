#include "log_chunk.h"

#include <algorithm>
#include <array>

#include "librr/bytes.h"
#include "librr/compress.h"
#include "log_compact.h"
#include "log_io.h"

namespace librr::logchunk {

ChunkSource::ChunkSource(int fd, std::filesystem::path path, uint64_t file_size,
                         const logfmt::FileHeader& file_header, const std::optional<Key>& key)
    : fd_(fd),
      path_(std::move(path)),
      file_size_(file_size),
      file_header_(file_header),
      layout_(file_header.chunk_layout()),
      key_(key) {}

LogProblem ChunkSource::problem(LogProblemKind kind, const Expectation& at,
                                std::string message) const {
  return LogProblem{kind, at.sequence, at.offset, std::move(message)};
}

// The header bytes at `offset`: up to the layout's largest header, fewer
// where the file ends sooner (decode then tells whether they suffice).
std::vector<uint8_t> ChunkSource::read_header_bytes(uint64_t offset) {
  const uint64_t available = offset <= file_size_ ? file_size_ - offset : 0;
  return logio::pread_upto(fd_, offset, std::min<uint64_t>(available, layout_.max_size()), path_);
}

std::optional<logfmt::ChunkHeader> ChunkSource::read_header_at(uint64_t offset, Digest* hash) {
  auto bytes = read_header_bytes(offset);
  try {
    auto h = logfmt::ChunkHeader::decode(bytes, layout_);
    if (hash) *hash = hash256(std::span(bytes).first(h.header_size));
    return h;
  } catch (const FormatError&) {
    return std::nullopt;
  }
}

LoadResult ChunkSource::load_header(const Expectation& expect) {
  using K = LogProblemKind;
  uint64_t available = expect.offset <= file_size_ ? file_size_ - expect.offset : 0;
  auto bytes = read_header_bytes(expect.offset);
  if (bytes.size() != std::min<uint64_t>(available, layout_.max_size()))
    return problem(K::torn_tail, expect, "short read of the chunk header");
  // A header the file cuts off is a torn tail, not damage: the writer was
  // killed during its write.
  const size_t declared = logfmt::ChunkHeader::declared_size(bytes, layout_);
  const bool plausible = declared >= layout_.min_size() && declared <= layout_.max_size();
  if (declared == 0 || (plausible && available < declared))
    return problem(K::torn_tail, expect,
                   "file ends " + std::to_string(available) + " bytes into a " +
                       (plausible ? std::to_string(declared) + "-byte " : std::string()) +
                       "chunk header");
  LoadedChunk chunk;
  try {
    chunk.header = logfmt::ChunkHeader::decode(bytes, layout_);
  } catch (const FormatError& e) {
    return problem(K::bad_header, expect, e.what());
  }
  const auto& h = chunk.header;
  chunk.header_bytes.assign(bytes.begin(), bytes.begin() + h.header_size);
  if (!digests_equal(h.prev_hash, expect.prev_hash))
    return problem(K::bad_chain, expect,
                   "previous-chunk hash does not match: a chunk before this one was deleted, "
                   "reordered or replaced");
  if (h.sequence != expect.sequence)
    return problem(K::bad_chain, expect,
                   "chunk sequence number " + std::to_string(h.sequence) + ", expected " +
                       std::to_string(expect.sequence));
  if (h.first_record_index != expect.first_record_index)
    return problem(K::bad_chain, expect,
                   "chunk starts at record " + std::to_string(h.first_record_index) +
                       ", expected " + std::to_string(expect.first_record_index));
  if (expect.min_position && h.first < *expect.min_position)
    return problem(K::bad_header, expect,
                   "chunk's first position " + h.first.to_string() +
                       " is before the previous chunk's last " + expect.min_position->to_string());
  uint64_t payload_available = available - h.header_size;
  if (payload_available < h.stored_length)
    return problem(K::torn_tail, expect,
                   "file ends " + std::to_string(payload_available) + " bytes into a " +
                       std::to_string(h.stored_length) + "-byte chunk payload");
  chunk.header_hash = hash256(chunk.header_bytes);
  chunk.end_offset = expect.offset + h.header_size + h.stored_length;
  return chunk;
}

std::optional<LogProblem> ChunkSource::decrypt_upto(uint64_t sequence,
                                                    const std::vector<ChunkIndexEntry>& index,
                                                    const Expectation& at) {
  if (!decryptor_ || decrypt_next_ > sequence) {
    decryptor_.emplace(*key_, file_header_.stream_header);
    decrypt_next_ = 0;
  }
  // The secretstream state after chunk k depends on every earlier chunk, so
  // a seek in an encrypted log replays the stream (decryption only, no zstd).
  while (decrypt_next_ < sequence) {
    if (decrypt_next_ >= index.size())
      return problem(LogProblemKind::decrypt_failed, at,
                     "cannot reach this chunk's place in the encrypted stream: no index entry "
                     "for chunk " +
                         std::to_string(decrypt_next_));
    uint64_t offset = index[decrypt_next_].offset;
    auto h = read_header_at(offset, nullptr);
    if (!h || file_size_ - offset - h->header_size < h->stored_length)
      return problem(LogProblemKind::decrypt_failed, at,
                     "earlier chunk at offset " + std::to_string(offset) + " is unreadable");
    auto payload = logio::pread_upto(fd_, offset + h->header_size, h->stored_length, path_);
    try {
      decryptor_->open(payload);
    } catch (const FormatError& e) {
      decryptor_.reset();
      return problem(LogProblemKind::decrypt_failed, at,
                     "earlier chunk " + std::to_string(decrypt_next_) + ": " + e.what());
    }
    ++decrypt_next_;
  }
  return std::nullopt;
}

std::optional<std::pair<LogProblemKind, std::string>> ChunkSource::payload_refusal(
    std::span<const uint8_t> header_bytes, const logfmt::ChunkHeader& h,
    std::span<const uint8_t> payload) const {
  if (checksum64(payload) != h.payload_checksum)
    return std::pair(LogProblemKind::bad_checksum, "payload checksum mismatch");
  if (key_ && layout_.mac &&
      !digests_equal(logfmt::chunk_mac(*key_, header_bytes, layout_, payload), h.mac))
    return std::pair(LogProblemKind::bad_mac,
                     "MAC mismatch: the chunk was modified by someone without the key");
  return std::nullopt;
}

std::optional<LogProblem> ChunkSource::load_prefix(uint64_t sequence,
                                                   const std::vector<ChunkIndexEntry>& index,
                                                   const Expectation& at) {
  const bool encrypted = file_header_.flags & logfmt::kFlagEncrypted;
  const uint64_t key_chunk = sequence - sequence % logfmt::kKeyChunkInterval;
  if (encrypted)
    if (auto p = decrypt_upto(key_chunk, index, at)) return p;
  prefix_sequence_.reset();
  std::vector<uint8_t> raw;
  // The chunks read here must be the ones this chunk follows, as checked as
  // if read in order: each header hashes to the next one's previous-header
  // hash (the last to this chunk's, `at.prev_hash`), and with a key each
  // chunk's MAC holds, so that nobody without the key can change what this
  // chunk decodes to by editing a chunk before it.
  std::optional<Digest> previous_header_hash;
  for (uint64_t k = key_chunk; k < sequence; ++k) {
    const auto unreadable = [&](LogProblemKind kind, const std::string& why) {
      return problem(kind, at,
                     "chunk " + std::to_string(k) + ", whose payload this chunk's zstd frame " +
                         "continues, " + why);
    };
    using K = LogProblemKind;
    if (k >= index.size()) return unreadable(K::decompress_failed, "has no index entry");
    const uint64_t offset = index[k].offset;
    const std::vector<uint8_t> header_bytes = read_header_bytes(offset);
    std::optional<logfmt::ChunkHeader> h;
    try {
      h = logfmt::ChunkHeader::decode(header_bytes, layout_);
    } catch (const FormatError& e) {
      return unreadable(K::bad_header, std::string("has a bad header: ") + e.what());
    }
    const uint64_t available = offset <= file_size_ ? file_size_ - offset : 0;
    if (h->sequence != k || available < h->header_size ||
        available - h->header_size < h->stored_length || h->raw_length > logfmt::kMaxRawLength)
      return unreadable(K::bad_header, "is not where the index says");
    const auto header = std::span(header_bytes).first(h->header_size);
    if (previous_header_hash && !digests_equal(h->prev_hash, *previous_header_hash))
      return unreadable(K::bad_chain, "does not follow the chunk before it");
    previous_header_hash = hash256(header);
    std::vector<uint8_t> payload =
        logio::pread_upto(fd_, offset + h->header_size, h->stored_length, path_);
    if (payload.size() != h->stored_length)
      return unreadable(K::bad_checksum, "fails its checksum: its payload is cut short");
    if (auto refusal = payload_refusal(header, *h, payload))
      return unreadable(refusal->first, "fails its check: " + refusal->second);
    try {
      if (encrypted) payload = decryptor_->open(payload);
      raw.resize(h->raw_length);
      zstd_decompress_into(payload, raw,
                           k == key_chunk ? std::span<const uint8_t>() : std::span(prefix_));
    } catch (const FormatError& e) {
      if (encrypted) decryptor_.reset();
      return unreadable(LogProblemKind::decompress_failed,
                        std::string("does not decode: ") + e.what());
    }
    if (encrypted) ++decrypt_next_;
    prefix_.swap(raw);
  }
  if (previous_header_hash && !digests_equal(*previous_header_hash, at.prev_hash))
    return problem(LogProblemKind::bad_chain, at,
                   "the chunk before this one, whose payload its zstd frame continues, is not "
                   "the one its header names");
  prefix_sequence_ = sequence - 1;
  return std::nullopt;
}

std::optional<LogProblem> ChunkSource::check_records(const logfmt::ChunkHeader& h,
                                                     std::span<const uint8_t> raw,
                                                     const Expectation& at) const {
  using K = LogProblemKind;
  // Two position slots used in turn, so that the previous record's position
  // is never copied: check_event stores each field with its own 8-byte write,
  // and a wider copy reading them straight back stalls on store forwarding
  // (that was a fifth of this loop). The first floor is the previous chunk's last.
  std::array<Position, 2> positions{at.min_position.value_or(Position{}), Position{}};
  size_t pos = 0;
  for (uint32_t i = 0; i < h.record_count; ++i) {
    Position& p = positions[(i + 1) % 2];
    const Position& previous = positions[i % 2];
    // Built only on failure: this loop runs once per record on the read path.
    auto where = [&] { return "record " + std::to_string(h.first_record_index + i); };
    if (raw.size() - pos < logfmt::kRecordFrameSize)
      return problem(K::bad_record, at, where() + ": payload ends inside its length");
    uint32_t len = logfmt::record_length_at(raw, pos);
    pos += logfmt::kRecordFrameSize;
    if (len > raw.size() - pos)
      return problem(K::bad_record, at,
                     where() + ": length " + std::to_string(len) + " runs past the payload");
    EventType type{};
    try {
      type = check_event(raw.subspan(pos, len), p);
    } catch (const FormatError& e) {
      return problem(K::bad_record, at, where() + ": " + e.what());
    }
    pos += len;
    if (i == 0 && p != h.first)
      return problem(K::bad_record, at,
                     where() + ": position " + p.to_string() +
                         " differs from the chunk header's first " + h.first.to_string());
    if (p < previous)
      return problem(
          K::bad_record, at,
          where() + ": position " + p.to_string() + " goes backwards from " + previous.to_string());
    bool is_end = type == EventType::end_of_recording;
    bool is_last = i + 1 == h.record_count;
    if (is_end && !(is_last && h.final()))
      return problem(K::bad_record, at, where() + ": EndOfRecording before the end of the log");
    if (is_last && h.final() && !is_end)
      return problem(K::bad_record, at, "final chunk does not end with EndOfRecording");
    if (is_last && p != h.last)
      return problem(K::bad_record, at,
                     where() + ": position " + p.to_string() +
                         " differs from the chunk header's last " + h.last.to_string());
  }
  if (pos != raw.size())
    return problem(K::bad_record, at,
                   std::to_string(raw.size() - pos) + " bytes after the chunk's last record");
  return std::nullopt;
}

LoadResult ChunkSource::load(const Expectation& expect, const std::vector<ChunkIndexEntry>& index) {
  using K = LogProblemKind;
  LoadResult result = load_header(expect);
  if (std::holds_alternative<LogProblem>(result)) return result;
  auto& chunk = std::get<LoadedChunk>(result);
  const auto& h = chunk.header;

  auto payload = logio::reuse_buffer(payload_, h.stored_length);
  if (logio::pread_into(fd_, expect.offset + h.header_size, payload, path_) != payload.size())
    return problem(K::torn_tail, expect, "short read of the chunk payload");
  if (auto refusal = payload_refusal(chunk.header_bytes, h, payload))
    return problem(refusal->first, expect, refusal->second);
  std::span<const uint8_t> compressed = payload;
  const bool has_prefix = file_header_.chunk_has_prefix(h.sequence);
  if (has_prefix && prefix_sequence_ != h.sequence - 1)
    if (auto p = load_prefix(h.sequence, index, expect)) return *p;
  if (file_header_.flags & logfmt::kFlagEncrypted) {
    if (auto p = decrypt_upto(h.sequence, index, expect)) return *p;
    bool final_tag = false;
    try {
      decrypted_ = decryptor_->open(payload, &final_tag);
    } catch (const FormatError& e) {
      decryptor_.reset();
      return problem(K::decrypt_failed, expect, e.what());
    }
    ++decrypt_next_;
    if (final_tag != h.final())
      return problem(K::decrypt_failed, expect,
                     "encrypted stream's end marker disagrees with the chunk header");
    compressed = decrypted_;
  }
  // raw_length is within kMaxRawLength: ChunkHeader::decode checked it.
  auto raw = logio::reuse_buffer(raw_, h.raw_length);
  try {
    zstd_decompress_into(
        compressed, raw,
        has_prefix ? std::span<const uint8_t>(prefix_) : std::span<const uint8_t>());
  } catch (const FormatError& e) {
    prefix_sequence_.reset();
    return problem(K::decompress_failed, expect, e.what());
  }
  if (file_header_.chunk_has_prefix(h.sequence + 1)) {
    prefix_.assign(raw.begin(), raw.end());
    prefix_sequence_ = h.sequence;
  }
  std::span<const uint8_t> framed = raw;
  if (file_header_.compact_records()) {
    try {
      logcompact::expand_records(raw, h.first, logfmt::kMaxRawLength, expanded_,
                                 file_header_.clock_deltas());
    } catch (const FormatError& e) {
      return problem(K::bad_record, expect, e.what());
    }
    framed = expanded_;
  }
  if (auto p = check_records(h, framed, expect)) return *p;
  chunk.records = framed;
  return result;
}

}  // namespace librr::logchunk
