#pragma once
// What `rr-analyze at` shows once the traveler stands at the position: each
// view prints text or JSON to stdout and returns a process exit code.
#include <cstdint>
#include <optional>
#include <string>

#include "travel/time_traveler.h"

namespace analyzer {

struct MemView {
  uint64_t address = 0;
  uint64_t length = 0;
  bool physical = false;
};

struct DisasmView {
  std::optional<uint64_t> address;  // default: rip
  uint64_t count = 10;
  std::string symbols_elf;  // empty: no symbols
};

int show_regs(const TimeTraveler& traveler, bool json);
int show_mem(const TimeTraveler& traveler, const MemView& view, bool json);
int show_disasm(const TimeTraveler& traveler, const DisasmView& view, bool json);

}  // namespace analyzer
