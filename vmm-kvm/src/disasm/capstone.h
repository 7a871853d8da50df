#pragma once
// Capstone (x86) with RAII: the handle and the instructions cs_disasm
// allocates, each freed once, however the caller leaves.
#include <capstone/capstone.h>

#include <cstddef>

#include "librr/error.h"

namespace vmm {

class CapstoneHandle {
 public:
  explicit CapstoneHandle(cs_mode mode, bool details = false) {
    if (cs_open(CS_ARCH_X86, mode, &handle_) != CS_ERR_OK)
      throw librr::Error("capstone: cannot open an x86 disassembler");
    cs_option(handle_, CS_OPT_SYNTAX, CS_OPT_SYNTAX_INTEL);
    if (details) cs_option(handle_, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~CapstoneHandle() { cs_close(&handle_); }
  CapstoneHandle(const CapstoneHandle&) = delete;
  CapstoneHandle& operator=(const CapstoneHandle&) = delete;
  csh get() const { return handle_; }

 private:
  csh handle_ = 0;
};

// What one cs_disasm call decoded.
struct DisassembledInstructions {
  cs_insn* first = nullptr;
  size_t count = 0;
  DisassembledInstructions() = default;
  DisassembledInstructions(const DisassembledInstructions&) = delete;
  DisassembledInstructions& operator=(const DisassembledInstructions&) = delete;
  ~DisassembledInstructions() {
    if (first) cs_free(first, count);
  }
};

}  // namespace vmm
