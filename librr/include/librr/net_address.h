#pragma once
// IPv4/IPv6 and MAC addresses as rr-gateway and rr-vmm's cooperative logging
// need them: parsed from registry/configuration text and compared against raw
// frame bytes.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace librr {

// An IPv4 address is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// so that one prefix type covers both families.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;

  static IpAddress v4(std::span<const uint8_t, 4> raw);
  static IpAddress v6(std::span<const uint8_t, 16> raw);
  // Throws FormatError naming the text if it is not an address.
  static IpAddress parse(std::string_view text);
  std::string to_string() const;
  // Broadcast (255.255.255.255) or multicast (224/4, ff00::/8).
  bool is_multicast_or_broadcast() const;
  bool operator==(const IpAddress&) const = default;
  auto operator<=>(const IpAddress&) const = default;
};

struct MacAddress {
  std::array<uint8_t, 6> bytes{};
  static MacAddress parse(std::string_view text);  // "02:00:00:00:00:01"
  std::string to_string() const;
  bool operator==(const MacAddress&) const = default;
  auto operator<=>(const MacAddress&) const = default;
};

}  // namespace librr
