// `rr-analyze at REC POS disasm [ADDR] [N] [--symbols ELF]`: Capstone, Intel
// syntax, 64-bit (or 32-bit when the guest is not in long mode).
#include <capstone/capstone.h>
#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "commands/at_symbols.h"
#include "commands/at_views.h"
#include "disasm/capstone.h"
#include "librr/error.h"
#include "machine/vcpu_state.h"

namespace analyzer {
namespace {

constexpr size_t kMaxInstructionBytes = 15;

}  // namespace

int show_disasm(const TimeTraveler& traveler, const DisasmView& view, bool json) {
  const vmm::VcpuState& state = traveler.vcpu();
  const uint64_t address = view.address.value_or(state.regs.rip);
  const bool long_mode = state.sregs.cs.l != 0;
  std::optional<SymbolTable> symbols;
  if (!view.symbols_elf.empty()) symbols = SymbolTable::load(view.symbols_elf);

  std::vector<uint8_t> code(view.count * kMaxInstructionBytes);
  code.resize(traveler.address_space().read(address, code));
  vmm::CapstoneHandle capstone(long_mode ? CS_MODE_64 : CS_MODE_32);
  vmm::DisassembledInstructions insns;
  insns.count =
      cs_disasm(capstone.get(), code.data(), code.size(), address, view.count, &insns.first);

  nlohmann::json list = nlohmann::json::array();
  for (size_t i = 0; i < insns.count; ++i) {
    const cs_insn& insn = insns.first[i];
    std::string bytes;
    for (uint16_t b = 0; b < insn.size; ++b) bytes += fmt::format("{:02x}", insn.bytes[b]);
    const std::optional<std::string> symbol =
        symbols ? symbols->describe(insn.address) : std::nullopt;
    if (json) {
      nlohmann::json entry = {{"address", insn.address},
                              {"bytes", bytes},
                              {"mnemonic", insn.mnemonic},
                              {"operands", insn.op_str}};
      if (symbol) entry["symbol"] = *symbol;
      list.push_back(entry);
    } else {
      fmt::print("{}{:016x} {:<24} {:<24} {} {}\n", insn.address == state.regs.rip ? "=> " : "   ",
                 insn.address, symbol ? "<" + *symbol + ">" : "", bytes, insn.mnemonic,
                 insn.op_str);
    }
  }
  if (json)
    fmt::print("{}\n", nlohmann::json{{"position", traveler.here().to_string()},
                                      {"rip", state.regs.rip},
                                      {"instructions", list}}
                           .dump(2));
  if (insns.count == 0) {
    std::fprintf(stderr, "rr-analyze: nothing to disassemble at %#llx (%s)\n",
                 static_cast<unsigned long long>(address),
                 code.empty() ? "not mapped" : "not a valid instruction");
    return 1;
  }
  return 0;
}

}  // namespace analyzer
