#include "librr/net_address.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>
#include <cstring>

#include "librr/error.h"

namespace librr {

IpAddress IpAddress::v4(std::span<const uint8_t, 4> raw) {
  IpAddress a;
  a.is_v4 = true;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(a.bytes.data() + 12, raw.data(), 4);
  return a;
}

IpAddress IpAddress::v6(std::span<const uint8_t, 16> raw) {
  IpAddress a;
  std::memcpy(a.bytes.data(), raw.data(), 16);
  return a;
}

IpAddress IpAddress::parse(std::string_view text) {
  std::string s(text);
  std::array<uint8_t, 16> buf{};
  if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1)
    return v4(std::span<const uint8_t, 4>(buf.data(), 4));
  if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) return v6(buf);
  throw FormatError(fmt::format("'{}' is not an IPv4 or IPv6 address", text));
}

std::string IpAddress::to_string() const {
  char out[INET6_ADDRSTRLEN] = {};
  if (is_v4)
    inet_ntop(AF_INET, bytes.data() + 12, out, sizeof out);
  else
    inet_ntop(AF_INET6, bytes.data(), out, sizeof out);
  return out;
}

bool IpAddress::is_multicast_or_broadcast() const {
  if (is_v4) {
    bool broadcast = bytes[12] == 255 && bytes[13] == 255 && bytes[14] == 255 && bytes[15] == 255;
    return broadcast || (bytes[12] & 0xf0) == 0xe0;
  }
  return bytes[0] == 0xff;
}

MacAddress MacAddress::parse(std::string_view text) {
  MacAddress m;
  if (text.size() != 17)
    throw FormatError(fmt::format("'{}' is not a MAC address (aa:bb:cc:dd:ee:ff)", text));
  for (size_t i = 0; i < 6; ++i) {
    auto part = text.substr(i * 3, 2);
    if (i < 5 && text[i * 3 + 2] != ':')
      throw FormatError(fmt::format("'{}' is not a MAC address (aa:bb:cc:dd:ee:ff)", text));
    auto [end, ec] = std::from_chars(part.data(), part.data() + 2, m.bytes[i], 16);
    if (ec != std::errc() || end != part.data() + 2)
      throw FormatError(fmt::format("'{}' is not a MAC address (aa:bb:cc:dd:ee:ff)", text));
  }
  return m;
}

std::string MacAddress::to_string() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                     bytes[3], bytes[4], bytes[5]);
}

}  // namespace librr
