// `rr-analyze at REC POS mem ADDR LEN [--phys]`: a hex dump of guest memory,
// virtual through the current CR3 by default.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "commands/at_views.h"

namespace analyzer {
namespace {

void print_hex_dump(uint64_t address, const std::vector<uint8_t>& bytes) {
  for (size_t line = 0; line < bytes.size(); line += 16) {
    std::string hex, text;
    for (size_t i = line; i < line + 16; ++i) {
      if (i < bytes.size()) {
        hex += fmt::format("{:02x} ", bytes[i]);
        text += (bytes[i] >= 0x20 && bytes[i] < 0x7f) ? static_cast<char>(bytes[i]) : '.';
      } else {
        hex += "   ";
      }
      if (i - line == 7) hex += ' ';
    }
    fmt::print("{:016x}  {} |{}|\n", address + line, hex, text);
  }
}

}  // namespace

int show_mem(const TimeTraveler& traveler, const MemView& view, bool json) {
  std::vector<uint8_t> bytes(view.length);
  size_t read = 0;
  if (view.physical) {
    // Physical reads are all-or-nothing; shrink to what lies inside RAM.
    const uint64_t size = traveler.memory().size();
    read = view.address >= size ? 0 : std::min<uint64_t>(view.length, size - view.address);
    if (read > 0 && !traveler.memory().read(view.address, {bytes.data(), read})) read = 0;
  } else {
    read = traveler.address_space().read(view.address, bytes);
  }
  bytes.resize(read);
  const std::string space = view.physical ? "physical" : "virtual";
  if (json) {
    std::string hex;
    for (uint8_t b : bytes) hex += fmt::format("{:02x}", b);
    nlohmann::json j = {{"position", traveler.here().to_string()},
                        {"address", view.address},
                        {"space", space},
                        {"requested", view.length},
                        {"length", read},
                        {"bytes", hex}};
    fmt::print("{}\n", j.dump(2));
  } else {
    print_hex_dump(view.address, bytes);
  }
  if (read < view.length) {
    std::fprintf(stderr, "rr-analyze: %s address %#llx is not %s at %s\n", space.c_str(),
                 static_cast<unsigned long long>(view.address + read),
                 view.physical ? "in guest RAM" : "mapped", traveler.here().to_string().c_str());
    return 1;
  }
  return 0;
}

}  // namespace analyzer
