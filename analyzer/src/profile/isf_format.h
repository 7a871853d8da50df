#pragma once
// Names shared by the ISF writer and reader (schemas/profile-format.md).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace analyzer {

inline constexpr const char* kIsfFormatVersion = "6.2.0";
// Our own metadata lives under this key; Volatility ignores it.
inline constexpr const char* kOwnMetadataKey = "rr_kvm";
inline constexpr const char* kOsLinux = "linux";
inline constexpr const char* kOsTestGuest = "rr-test-guest";
inline constexpr const char* kLinuxBannerSymbol = "linux_banner";
inline constexpr const char* kTestGuestTaskTable = "rr_task_table";

// Standard base64 (RFC 4648, with padding), as ISF stores constant_data.
std::string base64_encode(std::span<const uint8_t> bytes);
// Throws librr::FormatError on malformed input.
std::vector<uint8_t> base64_decode(const std::string& text);

}  // namespace analyzer
