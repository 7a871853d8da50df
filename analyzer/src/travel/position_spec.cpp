#include "travel/position_spec.h"

#include <fmt/format.h>

#include <charconv>

#include "librr/log.h"
#include "machine/vcpu_state.h"

namespace analyzer {
namespace {

// Digits only (decimal, or hex after 0x), no sign, no overflow.
std::optional<uint64_t> parse_number(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

[[noreturn]] void bad_syntax(std::string_view text) {
  throw PositionSyntaxError(
      fmt::format("'{}' is not a position; expected one of:\n{}", text, kPositionSyntaxHelp));
}

uint64_t number_or_fail(std::string_view digits, std::string_view whole) {
  const auto value = parse_number(digits);
  if (!value) bad_syntax(whole);
  return *value;
}

// The position of the n-th record (from 1) accepted by `matches`.
template <class Matches>
librr::Position nth_record(const std::filesystem::path& log_path,
                           const std::optional<librr::Key>& key, uint64_t ordinal,
                           std::string_view what, Matches&& matches) {
  librr::LogReaderOptions options;
  options.key = key;
  librr::LogReader reader(log_path, options);
  uint64_t seen = 0;
  while (auto event = reader.next())
    if (matches(*event) && ++seen == ordinal) return librr::event_position(*event);
  throw PositionPastEnd(fmt::format("the recording has only {} {}, not {}", seen, what, ordinal));
}

}  // namespace

const char* const kPositionSyntaxHelp =
    "  L123                       landmark 123 (the 123rd synchronous exit)\n"
    "  L123+a2, L123+s40, L123+a2+s5\n"
    "                             after async stop 2 / after 40 single-stepped instructions\n"
    "  L123@0xffffffff81000000#3  the 3rd time rip == 0xffffffff81000000 from L123 on (#1 if "
    "omitted);\n"
    "                             L123+a1@0x..#2@0x..#1: from any exact position, then after\n"
    "                             each link (the names breakpoint hits get)\n"
    "  irq:17                     where the 17th logged interrupt is delivered (from 1)\n"
    "  input:serial0:3            where the 3rd logged input on channel serial0 arrives (from 1)\n"
    "  start, end                 the first / last position of the recording\n";

PositionSpec PositionSpec::parse(std::string_view text) {
  PositionSpec spec;
  if (text == "end") {
    spec.kind = Kind::kEnd;
    return spec;
  }
  if (text == "start") return spec;
  if (text.starts_with("irq:")) {
    spec.kind = Kind::kInterrupt;
    spec.ordinal = number_or_fail(text.substr(4), text);
    if (spec.ordinal == 0) bad_syntax(text);
    return spec;
  }
  if (text.starts_with("input:")) {
    const std::string_view rest = text.substr(6);
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) bad_syntax(text);
    spec.kind = Kind::kInput;
    spec.channel = std::string(rest.substr(0, colon));
    spec.ordinal = number_or_fail(rest.substr(colon + 1), text);
    if (spec.ordinal == 0) bad_syntax(text);
    return spec;
  }
  if (const size_t at = text.find('@'); at != std::string_view::npos) {
    spec.kind = Kind::kPcHit;
    const auto base = librr::Position::try_parse(text.substr(0, at));
    if (!base) bad_syntax(text);
    spec.exact = *base;
    std::string_view links = text.substr(at + 1);
    for (;;) {
      const size_t next = links.find('@');
      std::string_view link = links.substr(0, next);
      PcArrival arrival;
      if (const size_t hash = link.find('#'); hash != std::string_view::npos) {
        arrival.ordinal = number_or_fail(link.substr(hash + 1), text);
        if (arrival.ordinal == 0) bad_syntax(text);
        link = link.substr(0, hash);
      }
      arrival.pc = number_or_fail(link, text);
      spec.arrivals.push_back(arrival);
      if (next == std::string_view::npos) break;
      links = links.substr(next + 1);
    }
    return spec;
  }
  const auto exact = librr::Position::try_parse(text);
  if (!exact) bad_syntax(text);
  spec.exact = *exact;
  return spec;
}

std::string PositionSpec::to_string() const {
  switch (kind) {
    case Kind::kExact:
      return exact.to_string();
    case Kind::kPcHit:
      return name().to_string();
    case Kind::kInterrupt:
      return fmt::format("irq:{}", ordinal);
    case Kind::kInput:
      return fmt::format("input:{}:{}", channel, ordinal);
    case Kind::kEnd:
      return "end";
  }
  return "?";
}

PositionName seek_to(TimeTraveler& traveler, const PositionSpec& spec,
                     const std::filesystem::path& log_path, const std::optional<librr::Key>& key) {
  switch (spec.kind) {
    case PositionSpec::Kind::kExact:
      traveler.seek(spec.exact);
      break;
    case PositionSpec::Kind::kEnd:
      traveler.seek(traveler.end());
      break;
    case PositionSpec::Kind::kInterrupt:
      traveler.seek(nth_record(log_path, key, spec.ordinal, "interrupt deliveries",
                               [](const librr::Event& e) {
                                 return std::holds_alternative<librr::InterruptDelivery>(e);
                               }));
      break;
    case PositionSpec::Kind::kInput:
      traveler.seek(nth_record(log_path, key, spec.ordinal,
                               "input records on channel " + spec.channel,
                               [&](const librr::Event& e) {
                                 const auto* input = std::get_if<librr::Input>(&e);
                                 return input && input->channel == spec.channel;
                               }));
      break;
    case PositionSpec::Kind::kPcHit:
      traveler.seek_named(spec.name());
      break;
  }
  return traveler.here();
}

}  // namespace analyzer
