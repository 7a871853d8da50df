#include "librr/host_identity.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "librr/bytes.h"
#include "librr/crypto.h"

namespace librr {
namespace {

std::string trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// The value of the first "key : value" line of /proc/cpuinfo with that key.
std::string cpuinfo_field(const std::string& cpuinfo, std::string_view key) {
  std::istringstream in(cpuinfo);
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
  }
  return {};
}

std::string read_cpuinfo() {
  std::ifstream in("/proc/cpuinfo");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string flags_digest(const std::string& flags_line) {
  std::istringstream in(flags_line);
  std::vector<std::string> flags{std::istream_iterator<std::string>(in),
                                 std::istream_iterator<std::string>()};
  std::sort(flags.begin(), flags.end());
  std::string joined;
  for (const auto& f : flags) joined += f + " ";
  auto digest = hash256({reinterpret_cast<const uint8_t*>(joined.data()), joined.size()});
  return to_hex(digest);
}

}  // namespace

HostIdentity current_host_identity() {
  HostIdentity id;
  const std::string cpuinfo = read_cpuinfo();
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0, &a, &b, &c, &d)) {
    char vendor[13] = {};
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    id.vendor = vendor;
  }
  ByteWriter feature_words;  // fallback digest input
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    uint32_t base_family = (a >> 8) & 0xF, base_model = (a >> 4) & 0xF;
    id.stepping = a & 0xF;
    id.family = base_family == 0xF ? base_family + ((a >> 20) & 0xFF) : base_family;
    id.model = (base_family == 0x6 || base_family == 0xF) ? base_model + (((a >> 16) & 0xF) << 4)
                                                          : base_model;
    feature_words.u32(c);
    feature_words.u32(d);
  }
  unsigned max_extended = __get_cpuid_max(0x80000000, nullptr);
  if (max_extended >= 0x80000004) {
    std::array<unsigned, 12> brand{};
    for (unsigned leaf = 0; leaf < 3; ++leaf)
      __get_cpuid(0x80000002 + leaf, &brand[leaf * 4], &brand[leaf * 4 + 1], &brand[leaf * 4 + 2],
                  &brand[leaf * 4 + 3]);
    char text[49] = {};
    std::memcpy(text, brand.data(), 48);
    id.model_name = trim(text);
  }
  if (cpuinfo_field(cpuinfo, "flags").empty())
    id.feature_flags_digest = to_hex(hash256(feature_words.data()));
#endif
  // /proc/cpuinfo fills what CPUID cannot give on this architecture.
  if (id.vendor.empty()) id.vendor = cpuinfo_field(cpuinfo, "vendor_id");
  if (id.model_name.empty()) id.model_name = cpuinfo_field(cpuinfo, "model name");
  if (std::string flags = cpuinfo_field(cpuinfo, "flags"); !flags.empty())
    id.feature_flags_digest = flags_digest(flags);
  return id;
}

std::vector<std::string> describe_host_differences(const HostIdentity& recorded,
                                                   const HostIdentity& current) {
  std::vector<std::string> out;
  auto compare = [&](std::string_view field, const std::string& a, const std::string& b) {
    if (a != b)
      out.push_back(std::string(field) + ": " + a + " (recorded) vs " + b + " (this host)");
  };
  compare("vendor", recorded.vendor, current.vendor);
  compare("family", std::to_string(recorded.family), std::to_string(current.family));
  compare("model", std::to_string(recorded.model), std::to_string(current.model));
  compare("stepping", std::to_string(recorded.stepping), std::to_string(current.stepping));
  compare("model name", recorded.model_name, current.model_name);
  compare("feature flags digest", recorded.feature_flags_digest, current.feature_flags_digest);
  return out;
}

}  // namespace librr
