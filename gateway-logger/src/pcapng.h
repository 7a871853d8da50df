#pragma once
// pcapng block encoders (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html):
// just the blocks rr-gateway writes. Little-endian, as the section header's
// byte-order magic declares.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace gateway::pcapng {

inline constexpr uint16_t kLinkTypeEthernet = 1;

// epb_flags bits: inbound/outbound and reception type (unicast, multicast, ...).
enum class FlagDirection : uint32_t { kUnknown = 0, kInbound = 1, kOutbound = 2 };
enum class FlagReception : uint32_t {
  kUnspecified = 0,
  kUnicast = 1,
  kMulticast = 2,
  kBroadcast = 3,
  kPromiscuous = 4
};
inline uint32_t epb_flags(FlagDirection direction, FlagReception reception) {
  return static_cast<uint32_t>(direction) | static_cast<uint32_t>(reception) << 2;
}

struct InterfaceStatistics {
  uint32_t interface_id = 0;
  uint64_t timestamp_ns = 0;
  uint64_t start_ns = 0;
  uint64_t received = 0;  // isb_ifrecv: frames the kernel saw on the socket
  uint64_t dropped = 0;   // isb_ifdrop: frames the kernel dropped (ring full)
};

// Each function appends one complete block to `out` and returns its size.
size_t append_section_header(std::vector<uint8_t>& out, std::string_view application);
// Timestamps are in nanoseconds (if_tsresol = 9).
size_t append_interface_description(std::vector<uint8_t>& out, std::string_view name,
                                    uint32_t snaplen);
size_t append_enhanced_packet(std::vector<uint8_t>& out, uint32_t interface_id,
                              uint64_t timestamp_ns, std::span<const uint8_t> captured,
                              uint32_t wire_length, uint32_t flags, uint64_t drop_count);
size_t append_interface_statistics(std::vector<uint8_t>& out, const InterfaceStatistics& stats);

}  // namespace gateway::pcapng
