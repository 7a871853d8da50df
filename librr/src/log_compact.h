#pragma once
// Internal: the chunk payload encoding of log format 2 (schemas/log-format.md,
// "Record framing"). In memory, and in format-1 payloads, a chunk's records
// are framed as `u32 length` + record, each record starting with its tag and
// its 24-byte Position. Format 2 stores the same records compactly:
//
//   varint rest_length | u8 tag | position delta | rest_length bytes
//
// where the position is delta-coded against the previous record of the chunk
// (the first record against the chunk header's `first`) and `rest` is the
// record after its position, unchanged. Consecutive records mostly differ by
// a few landmarks, so a position shrinks from 24 bytes to about 3, and the
// regular pattern of an idle guest compresses to almost nothing.
//
// Since format 2.7 a clock sample (an Input on channel "clock" holding a u64)
// is stored as its difference from the chunk's previous clock sample:
//
//   varint rest_length | u8 0x43 | position delta | varint code
//
// code = (delta / 1000) << 1 | 1 when the delta is whole microseconds, else
// delta << 1. A sample smaller than the previous one (or a delta too large to
// shift) stays an ordinary record. Samples ~10 ms apart take 2-3 bytes instead
// of the 8 random-looking ones zstd could not shrink.
//
// The writer compacts a sealed chunk just before compressing it; the reader
// expands a decompressed payload back into the in-memory framing, so record
// checks, iteration and seeks are the same for both formats.
#include <cstdint>
#include <span>
#include <vector>

#include "librr/position.h"

namespace librr::logcompact {

// Appends the compact form of `framed` (u32-length framed records whose
// first position is `first`) to `out`. The records were built by the writer:
// a malformed frame is a librr bug and throws Error.
// Compacts one chunk's records one at a time, each against the records
// before it (positions, clock samples). The byte report uses it to account
// each record as the writer stored it.
class RecordCompactor {
 public:
  RecordCompactor(const Position& first, bool clock_deltas)
      : prev_(first), clock_deltas_(clock_deltas) {}
  // Appends the compact form of `record` (tag, position, rest: one record
  // without its u32 frame, at least 25 bytes) to `out`.
  void add(std::span<const uint8_t> record, std::vector<uint8_t>& out);

 private:
  Position prev_;
  uint64_t prev_clock_ = 0;
  bool clock_deltas_;
};

// `clock_deltas`: the 2.7 clock form may be used (and is understood when expanding).
void compact_records(std::span<const uint8_t> framed, const Position& first,
                     std::vector<uint8_t>& out, bool clock_deltas = true);

// Expands a compact payload into u32-length framed records in `out` (resized
// to fit; capacity is kept across calls). Throws FormatError, naming the byte
// offset and the record, on truncation, an overflowing varint or position,
// or an expansion larger than `max_expanded` bytes.
void expand_records(std::span<const uint8_t> compact, const Position& first, size_t max_expanded,
                    std::vector<uint8_t>& out, bool clock_deltas = true);

// The varint and position-delta codes above, for other compact structures
// (format 2.5's chunk header). `what` names the field in errors.
void put_varint(std::vector<uint8_t>& out, uint64_t v);
void put_position_delta(std::vector<uint8_t>& out, const Position& prev, const Position& p);
// Read at `offset`, which they advance; throw FormatError (naming `what` and
// the offset) on truncation or a value above 64 bits.
uint64_t get_varint(std::span<const uint8_t> data, size_t& offset, const char* what);
Position get_position_delta(std::span<const uint8_t> data, size_t& offset, const Position& prev);

}  // namespace librr::logcompact
