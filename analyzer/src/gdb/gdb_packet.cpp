#include "gdb/gdb_packet.h"

#include <fmt/format.h>

#include <algorithm>

namespace analyzer::gdb {
namespace {

constexpr char kEscape = '}';
constexpr char kRepeat = '*';
constexpr uint8_t kEscapeXor = 0x20;
// A repeat count n is sent as the character n + 29.
constexpr int kRepeatBias = 29;
// Counts whose character would be '#' or '$' must not be sent; the largest
// count is the one sent as '~' (126).
constexpr int kMaxRepeat = 126 - kRepeatBias;

bool is_reserved(char c) { return c == '$' || c == '#' || c == kEscape || c == kRepeat; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool repeat_count_allowed(int count) {
  const char c = static_cast<char>(count + kRepeatBias);
  return c != '#' && c != '$' && !is_reserved(c) && c != '+' && c != '-';
}

}  // namespace

uint8_t checksum(std::string_view body) {
  uint8_t sum = 0;
  for (char c : body) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  return sum;
}

std::string encode_body(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  size_t i = 0;
  while (i < body.size()) {
    const char c = body[i];
    if (is_reserved(c)) {
      // Escaped bytes are never run-length encoded: a repeat after an escape
      // pair would repeat the decoded byte, which is correct, but keeping the
      // two mechanisms apart keeps the encoder obviously right.
      out.push_back(kEscape);
      out.push_back(static_cast<char>(c ^ kEscapeXor));
      ++i;
      continue;
    }
    size_t run = 1;
    while (i + run < body.size() && body[i + run] == c) ++run;
    i += run;
    out.push_back(c);
    size_t left = run - 1;
    while (left > 0) {
      // Short runs are cheaper written out than as "*n".
      if (left < 3) {
        out.append(left, c);
        break;
      }
      int count = static_cast<int>(std::min<size_t>(left, kMaxRepeat));
      while (!repeat_count_allowed(count)) --count;
      out.push_back(kRepeat);
      out.push_back(static_cast<char>(count + kRepeatBias));
      left -= static_cast<size_t>(count);
    }
  }
  return out;
}

std::string frame_packet(std::string_view body) {
  const std::string encoded = encode_body(body);
  return fmt::format("${}#{:02x}", encoded, checksum(encoded));
}

std::optional<std::string> decode_body(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == kEscape) {
      if (++i == raw.size()) return std::nullopt;
      out.push_back(static_cast<char>(raw[i] ^ kEscapeXor));
    } else if (c == kRepeat) {
      if (out.empty() || ++i == raw.size()) return std::nullopt;
      const int count = static_cast<uint8_t>(raw[i]) - kRepeatBias;
      if (count < 0 || out.size() + static_cast<size_t>(count) > kMaxPacketBody)
        return std::nullopt;
      out.append(static_cast<size_t>(count), out.back());
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int high = hex_value(hex[2 * i]), low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return out;
}

std::optional<uint64_t> parse_hex_number(std::string_view hex) {
  if (hex.empty() || hex.size() > 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : hex) {
    const int digit = hex_value(c);
    if (digit < 0) return std::nullopt;
    value = value << 4 | static_cast<uint64_t>(digit);
  }
  return value;
}

void PacketReader::feed(std::span<const uint8_t> bytes) {
  for (uint8_t byte : bytes) {
    const char c = static_cast<char>(byte);
    switch (state_) {
      case State::kIdle:
        if (c == '$') {
          state_ = State::kBody;
          raw_body_.clear();
          oversized_ = false;
        } else if (c == '+') {
          ready_.push_back({StreamItem::Kind::kAck, {}});
        } else if (c == '-') {
          ready_.push_back({StreamItem::Kind::kNack, {}});
        } else if (byte == 0x03) {
          ready_.push_back({StreamItem::Kind::kInterrupt, {}});
        }
        break;
      case State::kBody:
        if (c == '#') {
          state_ = State::kChecksum1;
        } else if (c == '$') {
          // A new packet start inside a body: the previous one was cut off.
          ready_.push_back({StreamItem::Kind::kBadChecksum, "packet restarted before '#'"});
          raw_body_.clear();
          oversized_ = false;
        } else if (raw_body_.size() < kMaxPacketBody) {
          raw_body_.push_back(c);
        } else {
          oversized_ = true;
        }
        break;
      case State::kChecksum1:
        checksum_digits_[0] = c;
        state_ = State::kChecksum2;
        break;
      case State::kChecksum2:
        checksum_digits_[1] = c;
        state_ = State::kIdle;
        finish_packet();
        break;
    }
  }
}

void PacketReader::finish_packet() {
  const auto sent = parse_hex_number({checksum_digits_, 2});
  if (oversized_) {
    ready_.push_back({StreamItem::Kind::kBadPacket,
                      fmt::format("packet body longer than {} bytes", kMaxPacketBody)});
    return;
  }
  if (!sent || *sent != checksum(raw_body_)) {
    ready_.push_back({StreamItem::Kind::kBadChecksum,
                      fmt::format("checksum mismatch: sent '{}{}', computed {:02x}",
                                  checksum_digits_[0], checksum_digits_[1], checksum(raw_body_))});
    return;
  }
  auto body = decode_body(raw_body_);
  if (!body) {
    ready_.push_back({StreamItem::Kind::kBadPacket, "bad escape or repeat in packet body"});
    return;
  }
  ready_.push_back({StreamItem::Kind::kPacket, std::move(*body)});
}

std::optional<StreamItem> PacketReader::next() {
  if (next_ready_ == ready_.size()) {
    ready_.clear();
    next_ready_ = 0;
    return std::nullopt;
  }
  return std::move(ready_[next_ready_++]);
}

}  // namespace analyzer::gdb
