#include "replay/return_site_stop.h"

#include <cstring>
#include <vector>

#include "disasm/capstone.h"
#include "librr/error.h"
#include "replay/guest_handler_step.h"
#include "replay/memory_shadow.h"
#include "replay/searched_position.h"

namespace vmm {
namespace {

// The bytes before `address` end with a near call: e8 rel32, or ff /2 with a
// register operand (ff d0-d7, with a REX prefix for r8-r15): Linux's indirect
// calls go through retpoline thunks, themselves called with e8.
bool follows_call(Machine& machine, const kvm_sregs& sregs, uint64_t address) {
  constexpr uint64_t kLongestCall = 5;
  if (address < kLongestCall) return false;
  std::vector<uint8_t> before;
  try {
    before = read_guest_virtual(machine, sregs, address - kLongestCall, kLongestCall);
  } catch (const librr::Error&) {
    return false;
  }
  const bool direct = before[0] == 0xe8;
  const bool through_register = before[3] == 0xff && (before[4] & 0xf8) == 0xd0;
  return direct || through_register;
}

// Guest-virtual memory from `address` on: `length` bytes, or up to the end
// of its page when the next page cannot be read (a stack's or code's end);
// empty when not even that can.
std::vector<uint8_t> read_up_to(Machine& machine, const kvm_sregs& sregs, uint64_t address,
                                uint64_t length) {
  try {
    return read_guest_virtual(machine, sregs, address, length);
  } catch (const librr::Error&) {
  }
  try {
    return read_guest_virtual(machine, sregs, address,
                              MemoryShadow::kPageSize - address % MemoryShadow::kPageSize);
  } catch (const librr::Error&) {
    return {};
  }
}

bool ends_straight_line_code(unsigned id) {
  return id == X86_INS_JMP || id == X86_INS_RET || id == X86_INS_IRETQ || id == X86_INS_IRET ||
         id == X86_INS_UD2 || id == X86_INS_HLT || id == X86_INS_SYSRET;
}

}  // namespace

std::optional<uint64_t> next_site_ahead(Machine& machine, const kvm_sregs& sregs, uint64_t rip) {
  const std::vector<uint8_t> code = read_up_to(machine, sregs, rip, kForwardScanBytes);
  if (code.empty()) return std::nullopt;
  const CapstoneHandle capstone(CS_MODE_64);
  DisassembledInstructions instructions;
  instructions.count = cs_disasm(capstone.get(), code.data(), code.size(), rip,
                                 kForwardScanInstructions, &instructions.first);
  // A rep-string instruction stopped mid-way (a page copy or clear) ends
  // soon: the instruction after it is reached once per run of it, where the
  // code after it may only loop back to it (Linux's page-cache copy, whose
  // function returns only after many pages).
  if (instructions.count > 0 && starts_with_rep_string(code)) {
    const uint64_t after = rip + instructions.first[0].size;
    if (searchable_instruction_at(machine, sregs, after)) return after;
  }
  for (size_t i = 0; i < instructions.count; ++i) {
    const cs_insn& instruction = instructions.first[i];
    if (ends_straight_line_code(instruction.id)) return std::nullopt;
    if (instruction.id != X86_INS_CALL) continue;
    const uint64_t site = instruction.address + instruction.size;
    if (searchable_instruction_at(machine, sregs, site)) return site;
  }
  return std::nullopt;
}

std::optional<uint64_t> innermost_return_site(Machine& machine, const kvm_sregs& sregs,
                                              const kvm_regs& regs) {
  constexpr uint64_t kSlot = 8;
  if (regs.rsp % kSlot != 0) return std::nullopt;
  const std::vector<uint8_t> stack = read_up_to(machine, sregs, regs.rsp, kReturnSiteScanBytes);
  for (uint64_t offset = 0; offset + kSlot <= stack.size(); offset += kSlot) {
    uint64_t value = 0;
    std::memcpy(&value, stack.data() + offset, kSlot);
    if (value == 0 || value == regs.rip) continue;
    if (follows_call(machine, sregs, value) && searchable_instruction_at(machine, sregs, value))
      return value;
  }
  return std::nullopt;
}

}  // namespace vmm
