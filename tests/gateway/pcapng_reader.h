#pragma once
// Test-side reader for the segments rr-gateway writes: decompresses a .zst
// file and walks its pcapng blocks, so tests can check every field
// independently of the writer's code.
#include <zstd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gateway_test {

inline std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), {}};
}

inline std::vector<uint8_t> zstd_decompress_file(const std::filesystem::path& path) {
  auto compressed = read_file(path);
  std::vector<uint8_t> out;
  ZSTD_DStream* stream = ZSTD_createDStream();
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  std::vector<uint8_t> chunk(ZSTD_DStreamOutSize());
  while (in.pos < in.size) {
    ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
    size_t rc = ZSTD_decompressStream(stream, &o, &in);
    if (ZSTD_isError(rc)) {
      ZSTD_freeDStream(stream);
      throw std::runtime_error(path.string() + ": " + ZSTD_getErrorName(rc));
    }
    out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<long>(o.pos));
  }
  ZSTD_freeDStream(stream);
  return out;
}

struct Packet {
  uint32_t interface_id = 0;
  uint64_t timestamp = 0;
  uint32_t wire_length = 0;
  std::vector<uint8_t> data;
  uint32_t flags = 0;
  uint64_t drop_count = ~uint64_t{0};
  uint64_t offset = 0;  // of the block in the decompressed file
};

struct InterfaceDescription {
  uint16_t link_type = 0;
  std::string name;
  uint8_t tsresol = 6;
};

struct Statistics {
  uint32_t interface_id = 0;
  uint64_t received = ~uint64_t{0};
  uint64_t dropped = ~uint64_t{0};
};

struct Pcapng {
  int section_headers = 0;
  std::vector<InterfaceDescription> interfaces;
  std::vector<Packet> packets;
  std::vector<Statistics> statistics;
};

// Options: code u16, length u16, value padded to 4; returns code -> value bytes.
inline std::multimap<uint16_t, std::vector<uint8_t>> read_options(const uint8_t* p, size_t n) {
  std::multimap<uint16_t, std::vector<uint8_t>> options;
  size_t at = 0;
  while (at + 4 <= n) {
    uint16_t code, length;
    std::memcpy(&code, p + at, 2);
    std::memcpy(&length, p + at + 2, 2);
    if (code == 0) break;
    if (at + 4 + length > n) throw std::runtime_error("option runs past its block");
    options.emplace(code, std::vector<uint8_t>(p + at + 4, p + at + 4 + length));
    at += 4 + ((length + 3u) & ~3u);
  }
  return options;
}

template <class T>
T option_value(const std::multimap<uint16_t, std::vector<uint8_t>>& options, uint16_t code,
               T fallback) {
  auto it = options.find(code);
  if (it == options.end() || it->second.size() != sizeof(T)) return fallback;
  T v;
  std::memcpy(&v, it->second.data(), sizeof v);
  return v;
}

inline Pcapng parse_pcapng(const std::vector<uint8_t>& bytes) {
  Pcapng file;
  size_t at = 0;
  while (at < bytes.size()) {
    if (at + 12 > bytes.size()) throw std::runtime_error("truncated block header");
    uint32_t type, length, trailer;
    std::memcpy(&type, &bytes[at], 4);
    std::memcpy(&length, &bytes[at + 4], 4);
    if (length < 12 || length % 4 || at + length > bytes.size())
      throw std::runtime_error("bad block length at " + std::to_string(at));
    std::memcpy(&trailer, &bytes[at + length - 4], 4);
    if (trailer != length) throw std::runtime_error("block trailer mismatch");
    const uint8_t* body = &bytes[at + 8];
    size_t body_size = length - 12;
    if (type == 0x0A0D0D0A) {
      ++file.section_headers;
    } else if (type == 1) {
      InterfaceDescription idb;
      std::memcpy(&idb.link_type, body, 2);
      auto options = read_options(body + 8, body_size - 8);
      if (auto it = options.find(2); it != options.end())
        idb.name.assign(it->second.begin(), it->second.end());
      idb.tsresol = option_value<uint8_t>(options, 9, 6);
      file.interfaces.push_back(idb);
    } else if (type == 6) {
      Packet packet;
      packet.offset = at;
      uint32_t high, low, captured;
      std::memcpy(&packet.interface_id, body, 4);
      std::memcpy(&high, body + 4, 4);
      std::memcpy(&low, body + 8, 4);
      std::memcpy(&captured, body + 12, 4);
      std::memcpy(&packet.wire_length, body + 16, 4);
      packet.timestamp = uint64_t{high} << 32 | low;
      packet.data.assign(body + 20, body + 20 + captured);
      size_t options_at = 20 + ((captured + 3u) & ~3u);
      auto options = read_options(body + options_at, body_size - options_at);
      packet.flags = option_value<uint32_t>(options, 2, 0);
      packet.drop_count = option_value<uint64_t>(options, 4, ~uint64_t{0});
      file.packets.push_back(std::move(packet));
    } else if (type == 5) {
      Statistics stats;
      std::memcpy(&stats.interface_id, body, 4);
      auto options = read_options(body + 12, body_size - 12);
      stats.received = option_value<uint64_t>(options, 4, ~uint64_t{0});
      stats.dropped = option_value<uint64_t>(options, 5, ~uint64_t{0});
      file.statistics.push_back(stats);
    }
    at += length;
  }
  return file;
}

}  // namespace gateway_test
