#include "ip_prefix.h"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "librr/error.h"

namespace gateway {

Prefix Prefix::parse(std::string_view text) {
  auto slash = text.find('/');
  Prefix p;
  p.network_ = librr::IpAddress::parse(text.substr(0, slash));
  unsigned max_len = p.network_.is_v4 ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || end != digits.data() + digits.size() || len > max_len)
      throw librr::FormatError(
          fmt::format("'{}': prefix length must be a number from 0 to {}", text, max_len));
  }
  p.length_ = p.network_.is_v4 ? len + 96 : len;
  // Clear host bits so that contains() compares networks only.
  for (unsigned bit = p.length_; bit < 128; ++bit)
    p.network_.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return p;
}

bool Prefix::contains(const librr::IpAddress& address) const {
  if (address.is_v4 != network_.is_v4) return false;
  unsigned full = length_ / 8;
  if (std::memcmp(address.bytes.data(), network_.bytes.data(), full) != 0) return false;
  unsigned rest = length_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff00u >> rest);
  return (address.bytes[full] & mask) == network_.bytes[full];
}

std::string Prefix::to_string() const {
  return fmt::format("{}/{}", network_.to_string(), network_.is_v4 ? length_ - 96 : length_);
}

}  // namespace gateway
