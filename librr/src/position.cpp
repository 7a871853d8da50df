#include "librr/position.h"

#include <charconv>

#include "librr/error.h"

namespace librr {

std::string Position::to_string() const {
  std::string s = "L" + std::to_string(landmark);
  if (async_seq != 0) s += "+a" + std::to_string(async_seq);
  if (steps != 0) s += "+s" + std::to_string(steps);
  return s;
}

namespace {

// Parses a decimal u64 at the front of `text`, advancing it. Rejects leading
// zeros ("007") so that every position has exactly one spelling.
std::optional<uint64_t> take_number(std::string_view& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || (digits > 1 && text[0] == '0')) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits) return std::nullopt;
  text.remove_prefix(digits);
  return value;
}

}  // namespace

std::optional<Position> Position::try_parse(std::string_view text) {
  if (text.empty() || text[0] != 'L') return std::nullopt;
  text.remove_prefix(1);
  Position p;
  auto landmark = take_number(text);
  if (!landmark) return std::nullopt;
  p.landmark = *landmark;
  if (text.starts_with("+a")) {
    text.remove_prefix(2);
    auto seq = take_number(text);
    if (!seq) return std::nullopt;
    p.async_seq = *seq;
  }
  if (text.starts_with("+s")) {
    text.remove_prefix(2);
    auto steps = take_number(text);
    if (!steps) return std::nullopt;
    p.steps = *steps;
  }
  if (!text.empty()) return std::nullopt;
  return p;
}

Position Position::parse(std::string_view text) {
  if (auto p = try_parse(text)) return *p;
  throw FormatError("invalid position '" + std::string(text) +
                    "': expected L<landmark>[+a<async>][+s<steps>], e.g. L1234+a2+s17");
}

}  // namespace librr
