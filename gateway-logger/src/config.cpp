#include "config.h"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "librr/error.h"

namespace gateway {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

void append_list(std::vector<std::string>& list, std::string_view value) {
  while (!value.empty()) {
    auto comma = value.find(',');
    auto item = trim(value.substr(0, comma));
    if (!item.empty()) list.emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

uint64_t parse_number(std::string_view text, std::string_view key, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > max)
    throw librr::FormatError(fmt::format("{}: '{}' is not a number from 0 to {}", key, text, max));
  return value;
}

}  // namespace

uint64_t parse_size(std::string_view text, std::string_view key) {
  uint64_t multiplier = 1;
  if (!text.empty()) {
    switch (std::toupper(static_cast<unsigned char>(text.back()))) {
      case 'K':
        multiplier = 1ull << 10;
        break;
      case 'M':
        multiplier = 1ull << 20;
        break;
      case 'G':
        multiplier = 1ull << 30;
        break;
      default:
        break;
    }
    if (multiplier != 1) text.remove_suffix(1);
  }
  return parse_number(text, key, (1ull << 50) / multiplier) * multiplier;
}

ConfigValues parse_config_text(std::string_view text, std::string_view origin) {
  ConfigValues values;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string_view view = line;
    view = trim(view.substr(0, view.find('#')));
    if (view.empty()) continue;
    auto equals = view.find('=');
    if (equals == std::string_view::npos)
      throw librr::FormatError(fmt::format("{}:{}: expected 'key = value'", origin, number));
    std::string key(trim(view.substr(0, equals)));
    auto value = trim(view.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    std::map<std::string, std::vector<std::string>*> lists = {
        {"capture_if", &values.capture_if},
        {"lan_if", &values.lan_if},
        {"wan_if", &values.wan_if},
        {"lan_prefix", &values.lan_prefix},
        {"announce_publish", &values.announce_publish}};
    std::map<std::string, std::string*> scalars = {
        {"out", &values.out},
        {"segment_size", &values.segment_size},
        {"segment_seconds", &values.segment_seconds},
        {"compression_level", &values.compression_level},
        {"flush_ms", &values.flush_ms},
        {"registry", &values.registry},
        {"announce_port", &values.announce_port},
        {"ring_block_size", &values.ring_block_size},
        {"ring_block_count", &values.ring_block_count},
        {"ring_block_timeout_ms", &values.ring_block_timeout_ms},
        {"snaplen", &values.snaplen}};
    if (auto it = lists.find(key); it != lists.end())
      append_list(*it->second, value);
    else if (auto scalar = scalars.find(key); scalar != scalars.end())
      *scalar->second = std::string(value);
    else
      throw librr::FormatError(fmt::format("{}:{}: unknown key '{}'", origin, number, key));
  }
  return values;
}

ConfigValues read_config_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) librr::throw_errno(fmt::format("cannot read config file {}", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_config_text(text.str(), path.string());
}

ConfigValues merge(ConfigValues base, const ConfigValues& o) {
  auto list = [](std::vector<std::string>& b, const std::vector<std::string>& v) {
    if (!v.empty()) b = v;
  };
  auto scalar = [](std::string& b, const std::string& v) {
    if (!v.empty()) b = v;
  };
  list(base.capture_if, o.capture_if);
  list(base.lan_if, o.lan_if);
  list(base.wan_if, o.wan_if);
  list(base.lan_prefix, o.lan_prefix);
  list(base.announce_publish, o.announce_publish);
  scalar(base.out, o.out);
  scalar(base.segment_size, o.segment_size);
  scalar(base.segment_seconds, o.segment_seconds);
  scalar(base.compression_level, o.compression_level);
  scalar(base.flush_ms, o.flush_ms);
  scalar(base.registry, o.registry);
  scalar(base.announce_port, o.announce_port);
  scalar(base.ring_block_size, o.ring_block_size);
  scalar(base.ring_block_count, o.ring_block_count);
  scalar(base.ring_block_timeout_ms, o.ring_block_timeout_ms);
  scalar(base.snaplen, o.snaplen);
  return base;
}

GatewayConfig resolve(const ConfigValues& v) {
  GatewayConfig c;
  std::set<std::string> lan(v.lan_if.begin(), v.lan_if.end());
  std::set<std::string> wan(v.wan_if.begin(), v.wan_if.end());
  std::set<std::string> all = lan;
  all.insert(wan.begin(), wan.end());
  for (const auto& name : v.capture_if) {
    if (!lan.count(name) && !wan.count(name))
      throw librr::FormatError(fmt::format(
          "capture interface '{}' has no role: list it in lan_if (--lan-if) or wan_if (--wan-if)",
          name));
  }
  for (const auto& name : all) {
    if (lan.count(name) && wan.count(name))
      throw librr::FormatError(fmt::format("interface '{}' is both lan_if and wan_if", name));
    c.interfaces.push_back({name, lan.count(name) ? InterfaceRole::kLan : InterfaceRole::kWan});
  }
  if (c.interfaces.empty())
    throw librr::FormatError(
        "no capture interface: give lan_if and/or wan_if (--lan-if, --wan-if)");
  if (v.lan_prefix.empty())
    throw librr::FormatError("no LAN prefix: give lan_prefix (--lan-prefix), e.g. 10.0.0.0/8");
  for (const auto& prefix : v.lan_prefix) Prefix::parse(prefix);  // validate early
  c.lan_prefixes = v.lan_prefix;
  if (v.out.empty()) throw librr::FormatError("no output directory: give out (--out)");
  c.out_dir = v.out;
  if (!v.segment_size.empty()) c.segment_size = parse_size(v.segment_size, "segment_size");
  if (c.segment_size < 4096) throw librr::FormatError("segment_size: must be at least 4K");
  if (!v.segment_seconds.empty())
    c.segment_seconds = parse_number(v.segment_seconds, "segment_seconds", 1ull << 40);
  if (!v.compression_level.empty())
    c.compression_level =
        static_cast<int>(parse_number(v.compression_level, "compression_level", 19));
  if (!v.flush_ms.empty())
    c.flush_ms = static_cast<uint32_t>(parse_number(v.flush_ms, "flush_ms", 60'000));
  if (c.flush_ms == 0) c.flush_ms = 1;
  c.registry = v.registry;
  if (!v.announce_port.empty())
    c.announce_port = static_cast<uint16_t>(parse_number(v.announce_port, "announce_port", 65535));
  c.announce_publish = v.announce_publish;
  if (!v.ring_block_size.empty())
    c.ring_block_size = static_cast<uint32_t>(parse_size(v.ring_block_size, "ring_block_size"));
  if (c.ring_block_size < 4096 || (c.ring_block_size & (c.ring_block_size - 1)) != 0)
    throw librr::FormatError("ring_block_size: must be a power of two, at least 4K");
  if (!v.ring_block_count.empty())
    c.ring_block_count =
        static_cast<uint32_t>(parse_number(v.ring_block_count, "ring_block_count", 65536));
  if (c.ring_block_count < 2) throw librr::FormatError("ring_block_count: must be at least 2");
  if (!v.ring_block_timeout_ms.empty())
    c.ring_block_timeout_ms = static_cast<uint32_t>(
        parse_number(v.ring_block_timeout_ms, "ring_block_timeout_ms", 10'000));
  if (!v.snaplen.empty())
    c.snaplen = static_cast<uint32_t>(parse_number(v.snaplen, "snaplen", 262144));
  if (c.snaplen < 64) throw librr::FormatError("snaplen: must be at least 64");
  return c;
}

}  // namespace gateway
