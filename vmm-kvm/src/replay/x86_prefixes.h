#pragma once
// The prefixes an x86-64 instruction starts with, as far as this VMM's
// decisions about single instructions need them: legacy prefixes (operand
// and address size, segment overrides, lock, rep/repne) and REX, then the
// first opcode byte.
#include <cstddef>
#include <cstdint>
#include <span>

namespace vmm {

struct InstructionPrefixes {
  bool operand_size = false;  // 0x66
  bool rep = false;           // 0xf2 or 0xf3
  size_t opcode = 0;          // index of the first opcode byte; == size() when none in the bytes
};

inline InstructionPrefixes scan_prefixes(std::span<const uint8_t> code) {
  InstructionPrefixes prefixes;
  for (; prefixes.opcode < code.size(); ++prefixes.opcode) {
    const uint8_t byte = code[prefixes.opcode];
    switch (byte) {
      case 0x66:
        prefixes.operand_size = true;
        continue;
      case 0xf2:
      case 0xf3:
        prefixes.rep = true;
        continue;
      case 0x26:
      case 0x2e:
      case 0x36:
      case 0x3e:
      case 0x64:
      case 0x65:
      case 0x67:
      case 0xf0:
        continue;
      default:
        break;
    }
    if ((byte & 0xf0) == 0x40) continue;  // REX
    break;
  }
  return prefixes;
}

}  // namespace vmm
