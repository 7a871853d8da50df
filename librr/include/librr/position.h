#pragma once
// Position: where in a guest's execution something happens.
//
// Landmarks are counts of synchronous VM exits (port I/O, MMIO, HLT). They
// happen at the same instruction in record and replay, so they are the
// deterministic skeleton every other position hangs from:
//
//   landmark   number of synchronous exits completed so far
//   async_seq  0: "at that synchronous exit"; k > 0: the k-th asynchronous stop
//              of the vCPU after that exit and before the next one (an
//              interrupt window, a timer-driven stop, ...)
//   steps      extra single-stepped instructions after that point (analysis
//              positions; the recorder itself always writes 0)
//
// The order is lexicographic on (landmark, async_seq, steps), which is the
// order in which a single vCPU reaches the positions. Text form:
// "L1234", "L1234+a2", "L1234+s17", "L1234+a2+s17" (zero parts are omitted
// when formatting; parse accepts exactly this grammar).
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "librr/bytes.h"

namespace librr {

struct Position {
  uint64_t landmark = 0;
  uint64_t async_seq = 0;
  uint64_t steps = 0;

  friend auto operator<=>(const Position&, const Position&) = default;
  friend bool operator==(const Position&, const Position&) = default;

  std::string to_string() const;
  // Returns nullopt on anything but the grammar above (no signs, spaces,
  // overflow or leading zeros beyond a single "0").
  static std::optional<Position> try_parse(std::string_view text);
  // Like try_parse, but throws FormatError naming the text.
  static Position parse(std::string_view text);
};

// The wire form shared by every librr format: three u64, little-endian.
inline void encode_position(ByteWriter& out, const Position& p) {
  out.u64(p.landmark);
  out.u64(p.async_seq);
  out.u64(p.steps);
}
inline Position decode_position(ByteReader& in) {
  Position p;
  p.landmark = in.u64();
  p.async_seq = in.u64();
  p.steps = in.u64();
  return p;
}

}  // namespace librr
