#pragma once
// GDB remote serial protocol: the byte level. Packets are "$<body>#<two hex
// digit checksum>"; inside a body '}' escapes the next byte (XOR 0x20) and
// '*' repeats the previous byte (run-length encoding). Outside packets the
// stream carries acks ('+', '-') and the interrupt byte 0x03. See gdb's
// manual, appendix "Remote Protocol", sections Overview and Packet
// Acknowledgment.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace analyzer::gdb {

// Largest packet body we accept (and advertise as PacketSize). Anything
// longer is reported as malformed instead of growing without bound.
inline constexpr size_t kMaxPacketBody = 0x4000;

// Modulo-256 sum of the bytes, as the protocol defines the checksum.
uint8_t checksum(std::string_view body);

// "$body#cs" with the body encoded by encode_body.
std::string frame_packet(std::string_view body);

// Escapes the bytes the protocol reserves ('$', '#', '}', '*') and
// run-length encodes runs of other bytes (never producing a repeat count
// that would read as '#' or '$'). Replies may carry binary data (qXfer).
std::string encode_body(std::string_view body);

// Undoes escaping and run-length encoding of a received body. nullopt if the
// body ends inside an escape or starts with a repeat.
std::optional<std::string> decode_body(std::string_view raw);

// Lower-case hex of bytes, and back. from_hex fails on odd length or a
// non-hex digit.
std::string to_hex(std::span<const uint8_t> bytes);
std::optional<std::vector<uint8_t>> from_hex(std::string_view hex);
// An unsigned number in hex (1-16 digits), as in "m<addr>,<len>".
std::optional<uint64_t> parse_hex_number(std::string_view hex);

// What the byte stream from gdb contains, item by item.
struct StreamItem {
  enum class Kind {
    kAck,          // '+'
    kNack,         // '-': resend the last reply
    kInterrupt,    // 0x03 (Ctrl-C in gdb)
    kPacket,       // a whole packet with a good checksum; body is decoded
    kBadChecksum,  // the sender should retransmit ('-')
    kBadPacket,    // checksum fine, body unusable (bad escape, too long)
  };
  Kind kind = Kind::kAck;
  std::string body;  // kPacket: the decoded body; otherwise what was wrong
};

// Splits the incoming byte stream into items. Feed it whatever read()
// returned; complete items come out of next(). Bytes between packets that
// are none of the above (line noise) are skipped.
class PacketReader {
 public:
  void feed(std::span<const uint8_t> bytes);
  std::optional<StreamItem> next();

 private:
  enum class State { kIdle, kBody, kChecksum1, kChecksum2 };
  void finish_packet();

  State state_ = State::kIdle;
  std::string raw_body_;
  bool oversized_ = false;
  char checksum_digits_[2] = {0, 0};
  std::vector<StreamItem> ready_;
  size_t next_ready_ = 0;
};

}  // namespace analyzer::gdb
