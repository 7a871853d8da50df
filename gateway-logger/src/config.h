#pragma once
// rr-gateway's settings: a key = value file (documented in docs/gateway.md)
// that command-line flags override.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "classifier.h"

namespace gateway {

struct CaptureInterface {
  std::string name;
  InterfaceRole role = InterfaceRole::kLan;
};

struct GatewayConfig {
  std::vector<CaptureInterface> interfaces;
  std::vector<std::string> lan_prefixes;
  std::filesystem::path out_dir;
  uint64_t segment_size = 64ull << 20;  // bytes of pcapng before compression
  uint64_t segment_seconds = 3600;      // 0: rotate by size only
  int compression_level = 3;
  uint32_t flush_ms = 200;                    // buffered frames reach the disk at least this often
  std::filesystem::path registry;             // empty: no cooperating hosts
  uint16_t announce_port = 0;                 // 0: no announcement socket
  std::vector<std::string> announce_publish;  // "address:port" receiving the gateway's digests
  uint32_t ring_block_size = 1 << 20;
  uint32_t ring_block_count = 64;
  uint32_t ring_block_timeout_ms = 20;
  uint32_t snaplen = 65535;
};

// The raw settings as strings, before validation: what a file or the command
// line said. Lists accumulate across repeated keys and commas.
struct ConfigValues {
  std::vector<std::string> capture_if, lan_if, wan_if, lan_prefix, announce_publish;
  std::string out, segment_size, segment_seconds, compression_level, flush_ms, registry,
      announce_port, ring_block_size, ring_block_count, ring_block_timeout_ms, snaplen;
};

// Parses "key = value" lines; '#' starts a comment. Throws librr::FormatError
// with the file name and line number on unknown keys or bad syntax.
ConfigValues parse_config_text(std::string_view text, std::string_view origin);
ConfigValues read_config_file(const std::filesystem::path& path);
// Every non-empty field of `overrides` replaces the one in `base`.
ConfigValues merge(ConfigValues base, const ConfigValues& overrides);
// Validates and converts. Sizes accept K, M, G suffixes (powers of 1024).
GatewayConfig resolve(const ConfigValues& values);

uint64_t parse_size(std::string_view text, std::string_view key);

}  // namespace gateway
