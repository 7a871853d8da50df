#pragma once
// Assembles the probe's tiny guests from raw x86 machine code. Each helper
// names the instruction it emits; the encodings are in the comments so a
// reader can check them against the SDM without a disassembler.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <vector>

#include "probe/probe_guest.h"

namespace vmm::probe {

class Snippet {
 public:
  explicit Snippet(GuestMode mode) : mode_(mode) {}

  Snippet& bytes(std::initializer_list<uint8_t> list) {
    code_.insert(code_.end(), list);
    return *this;
  }
  Snippet& u32(uint32_t value) {
    for (int i = 0; i < 4; ++i) code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
    return *this;
  }
  Snippet& u64(uint64_t value) {
    for (int i = 0; i < 8; ++i) code_.push_back(static_cast<uint8_t>(value >> (8 * i)));
    return *this;
  }
  size_t offset() const { return code_.size(); }
  uint64_t address() const { return ProbeGuest::code_address(mode_) + code_.size(); }
  std::span<const uint8_t> code() const { return code_; }
  std::vector<uint8_t>& mutable_code() { return code_; }

  // dec ecx / dec rcx in the mode's natural width (real mode needs the 0x66
  // operand-size prefix; in 64-bit mode 0x49 would be a REX prefix).
  Snippet& dec_counter() {
    switch (mode_) {
      case GuestMode::real16:
        return bytes({0x66, 0x49});
      case GuestMode::protected32:
      case GuestMode::compat32_cpl3:
        return bytes({0x49});
      case GuestMode::long64_cpl0:
      case GuestMode::long64_cpl3:
        return bytes({0x48, 0xff, 0xc9});
    }
    return *this;
  }
  Snippet& inc_rax() { return bytes({0x48, 0xff, 0xc0}); }  // inc rax (64-bit modes)
  Snippet& jnz_to(size_t target) { return rel8(0x75, target); }
  Snippet& jmp_to(size_t target) { return rel8(0xeb, target); }
  Snippet& out_al(uint8_t port) { return bytes({0xe6, port}); }  // out imm8, al

  // Ends the snippet so that the host sees an exit: at CPL0 `out 0xf4, al;
  // hlt`, at CPL3 `ud2`, whose #UD the IDT stub reports on port 0xf5.
  Snippet& finish() {
    if (mode_cpl(mode_) == 0) return out_al(ports::kDone).bytes({0xf4});
    return bytes({0x0f, 0x0b});
  }

 private:
  Snippet& rel8(uint8_t opcode, size_t target) {
    const auto displacement = static_cast<int64_t>(target) - static_cast<int64_t>(offset() + 2);
    if (displacement < -128 || displacement > 127) throw std::logic_error("rel8 out of range");
    return bytes({opcode, static_cast<uint8_t>(displacement)});
  }

  GuestMode mode_;
  std::vector<uint8_t> code_;
};

// True if the guest's last exit is the snippet's normal end (see finish()).
inline bool finished_normally(ProbeGuest& guest, GuestMode mode) {
  if (mode_cpl(mode) == 0) return guest.exited_on_port(ports::kDone);
  return guest.reported_exception() == 6;
}

}  // namespace vmm::probe
