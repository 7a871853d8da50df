#include "log_compact.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>

#include "librr/error.h"
#include "log_format.h"

namespace librr::logcompact {
namespace {

constexpr size_t kTagSize = 1;
constexpr size_t kPositionSize = 3 * sizeof(uint64_t);
constexpr size_t kMaxVarintBytes = 10;  // 64 bits, 7 per byte

Position load_position(const uint8_t* p) {
  Position pos;
  std::memcpy(&pos.landmark, p, 8);
  std::memcpy(&pos.async_seq, p + 8, 8);
  std::memcpy(&pos.steps, p + 16, 8);
  return pos;
}

void store_position(uint8_t* p, const Position& pos) {
  std::memcpy(p, &pos.landmark, 8);
  std::memcpy(p + 8, &pos.async_seq, 8);
  std::memcpy(p + 16, &pos.steps, 8);
}

class CompactReader {
 public:
  // `what` names the structure in errors; without it they name the record.
  explicit CompactReader(std::span<const uint8_t> data, size_t offset = 0,
                         const char* what = nullptr)
      : data_(data), pos_(offset), what_(what) {}
  bool at_end() const { return pos_ == data_.size(); }
  size_t offset() const { return pos_; }

  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (size_t i = 0; i < kMaxVarintBytes; ++i) {
      if (pos_ == data_.size()) fail(std::string("payload ends inside ") + what);
      const uint8_t byte = data_[pos_++];
      const uint64_t bits = byte & 0x7f;
      if (i == kMaxVarintBytes - 1 && bits > 1) fail(std::string(what) + " overflows 64 bits");
      value |= bits << (7 * i);
      if (!(byte & 0x80)) return value;
    }
    fail(std::string(what) + " is longer than 10 bytes");
  }
  uint8_t u8(const char* what) {
    if (pos_ == data_.size()) fail(std::string("payload ends before ") + what);
    return data_[pos_++];
  }
  std::span<const uint8_t> take(uint64_t n) {
    if (n > data_.size() - pos_)
      fail("record claims " + std::to_string(n) + " more bytes, only " +
           std::to_string(data_.size() - pos_) + " remain");
    auto out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  [[noreturn]] void fail(const std::string& message) const {
    std::string where = what_ ? what_ : "compact record " + std::to_string(record_);
    throw FormatError(where + ": " + message, static_cast<int64_t>(pos_));
  }
  void next_record() { ++record_; }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  const char* what_;
  uint64_t record_ = 0;
};

uint64_t add_checked(uint64_t base, uint64_t delta, const char* field, const CompactReader& in) {
  if (delta > UINT64_MAX - base) in.fail(std::string(field) + " overflows 64 bits");
  return base + delta;
}

// An Input record's rest (after tag and position) when it is a clock sample:
// channel "clock" (u32 length + bytes), data of 8 bytes (u32 length + u64).
constexpr uint8_t kInputTag = 3;
constexpr uint8_t kClockDeltaTag = 0x43;
constexpr uint8_t kClockRestPrefix[] = {5, 0, 0, 0, 'c', 'l', 'o', 'c', 'k', 8, 0, 0, 0};
constexpr size_t kClockRestSize = sizeof kClockRestPrefix + sizeof(uint64_t);
constexpr uint64_t kNanosPerMicro = 1000;

std::optional<uint64_t> clock_sample_in(uint8_t tag, std::span<const uint8_t> rest) {
  if (tag != kInputTag || rest.size() != kClockRestSize ||
      !std::equal(std::begin(kClockRestPrefix), std::end(kClockRestPrefix), rest.begin()))
    return std::nullopt;
  uint64_t value;
  std::memcpy(&value, rest.data() + sizeof kClockRestPrefix, sizeof value);
  return value;
}

// The 2.7 code of a sample `value` after `prev`, if it has one.
std::optional<uint64_t> clock_delta_code(uint64_t prev, uint64_t value) {
  if (value < prev) return std::nullopt;
  const uint64_t delta = value - prev;
  if (delta % kNanosPerMicro == 0) return (delta / kNanosPerMicro) << 1 | 1;
  if (delta >> 63) return std::nullopt;
  return delta << 1;
}

Position apply_position_delta(CompactReader& in, const Position& prev) {
  Position p;
  const uint64_t landmarks = in.varint("landmark delta");
  p.landmark = add_checked(prev.landmark, landmarks, "landmark", in);
  const uint64_t async_seq = in.varint("async_seq");
  const bool same_landmark = landmarks == 0;
  p.async_seq = same_landmark ? add_checked(prev.async_seq, async_seq, "async_seq", in) : async_seq;
  const uint64_t steps = in.varint("steps");
  const bool same_stop = same_landmark && p.async_seq == prev.async_seq;
  p.steps = same_stop ? add_checked(prev.steps, steps, "steps", in) : steps;
  return p;
}

}  // namespace

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

// The delta of `p` from `prev` (p >= prev): landmarks always as a difference;
// async_seq as a difference only within the same landmark (it restarts at 0
// with each landmark), steps likewise within the same (landmark, async_seq).
void put_position_delta(std::vector<uint8_t>& out, const Position& prev, const Position& p) {
  const uint64_t landmarks = p.landmark - prev.landmark;
  put_varint(out, landmarks);
  const bool same_landmark = landmarks == 0;
  put_varint(out, same_landmark ? p.async_seq - prev.async_seq : p.async_seq);
  const bool same_stop = same_landmark && p.async_seq == prev.async_seq;
  put_varint(out, same_stop ? p.steps - prev.steps : p.steps);
}

uint64_t get_varint(std::span<const uint8_t> data, size_t& offset, const char* what) {
  CompactReader in(data, offset, "compact field");
  const uint64_t v = in.varint(what);
  offset = in.offset();
  return v;
}

Position get_position_delta(std::span<const uint8_t> data, size_t& offset, const Position& prev) {
  CompactReader in(data, offset, "compact position");
  const Position p = apply_position_delta(in, prev);
  offset = in.offset();
  return p;
}

void RecordCompactor::add(std::span<const uint8_t> record, std::vector<uint8_t>& out) {
  const Position p = load_position(record.data() + kTagSize);
  const std::span<const uint8_t> body = record.subspan(kTagSize + kPositionSize);
  const std::optional<uint64_t> clock =
      clock_deltas_ ? clock_sample_in(record[0], body) : std::nullopt;
  if (const auto code = clock ? clock_delta_code(prev_clock_, *clock) : std::nullopt) {
    std::vector<uint8_t> coded;
    put_varint(coded, *code);
    put_varint(out, coded.size());
    out.push_back(kClockDeltaTag);
    put_position_delta(out, prev_, p);
    out.insert(out.end(), coded.begin(), coded.end());
  } else {
    put_varint(out, body.size());
    out.push_back(record[0]);
    put_position_delta(out, prev_, p);
    out.insert(out.end(), body.begin(), body.end());
  }
  if (clock) prev_clock_ = *clock;
  prev_ = p;
}

void compact_records(std::span<const uint8_t> framed, const Position& first,
                     std::vector<uint8_t>& out, bool clock_deltas) {
  RecordCompactor compactor(first, clock_deltas);
  size_t pos = 0;
  while (pos < framed.size()) {
    if (framed.size() - pos < logfmt::kRecordFrameSize)
      throw Error("compact_records: framing ends inside a length");
    const uint32_t len = logfmt::record_length_at(framed, pos);
    pos += logfmt::kRecordFrameSize;
    if (len < kTagSize + kPositionSize || len > framed.size() - pos)
      throw Error("compact_records: record of " + std::to_string(len) + " bytes at offset " +
                  std::to_string(pos) + " is malformed");
    compactor.add(framed.subspan(pos, len), out);
    pos += len;
  }
}

void expand_records(std::span<const uint8_t> compact, const Position& first, size_t max_expanded,
                    std::vector<uint8_t>& out, bool clock_deltas) {
  out.clear();
  CompactReader in(compact);
  Position prev = first;
  uint64_t prev_clock = 0;
  std::array<uint8_t, kClockRestSize> clock_rest;
  while (!in.at_end()) {
    const uint64_t rest = in.varint("record length");
    uint8_t tag = in.u8("the record tag");
    const Position p = apply_position_delta(in, prev);
    std::span<const uint8_t> body = in.take(rest);
    if (tag == kClockDeltaTag && clock_deltas) {
      size_t at = 0;
      const uint64_t code = get_varint(body, at, "clock delta");
      if (at != body.size()) in.fail("clock delta record has bytes after its delta");
      const uint64_t units = code >> 1;
      if ((code & 1) && units > UINT64_MAX / kNanosPerMicro)
        in.fail("clock delta overflows 64 bits");
      const uint64_t value =
          add_checked(prev_clock, (code & 1) ? units * kNanosPerMicro : units, "clock", in);
      std::copy(std::begin(kClockRestPrefix), std::end(kClockRestPrefix), clock_rest.begin());
      std::memcpy(clock_rest.data() + sizeof kClockRestPrefix, &value, sizeof value);
      tag = kInputTag;
      body = clock_rest;
      prev_clock = value;
    } else if (clock_deltas) {
      if (const auto clock = clock_sample_in(tag, body)) prev_clock = *clock;  // stored as is
    }
    const uint64_t len = kTagSize + kPositionSize + body.size();
    if (len > logfmt::kMaxRecordSize)
      in.fail("record of " + std::to_string(len) + " bytes exceeds the limit of " +
              std::to_string(logfmt::kMaxRecordSize));
    if (logfmt::kRecordFrameSize + len > max_expanded - std::min(max_expanded, out.size()))
      in.fail("records expand beyond " + std::to_string(max_expanded) + " bytes");
    const size_t at = out.size();
    out.resize(at + logfmt::kRecordFrameSize + len);
    uint8_t* dst = out.data() + at;
    const auto len32 = static_cast<uint32_t>(len);
    std::memcpy(dst, &len32, sizeof len32);
    dst[logfmt::kRecordFrameSize] = tag;
    store_position(dst + logfmt::kRecordFrameSize + kTagSize, p);
    if (!body.empty())
      std::memcpy(dst + logfmt::kRecordFrameSize + kTagSize + kPositionSize, body.data(),
                  body.size());
    prev = p;
    in.next_record();
  }
}

}  // namespace librr::logcompact
