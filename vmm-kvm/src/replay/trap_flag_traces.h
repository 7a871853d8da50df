#pragma once
// A single step makes the host set the trap flag (RFLAGS.TF) for one
// instruction. KVM hides it from the registers it reports, but the CPU
// stores RFLAGS in guest memory during the step in two places, and there
// the flag stays (measured on kvm_pvm, docs/analyzer.md "Single steps"):
//  * the frame of an event delivered during the step: the interrupt a step
//    from a logged position delivers first, or the exception the stepped
//    instruction raises (a ud2 system call, a page fault), at CPL0 and CPL3;
//  * the value `pushf` stores at CPL3 (the CPL0 emulator pushes the guest's
//    own flags; a VT-x host would push TF at CPL0 too).
// The recorded run stored the guest's own flags there. Left alone, the
// memory digests differ, and the kernel's iretq through such a frame returns
// with TF set, so that the guest later takes a #DB the recording never had.
// TrapFlagTraces looks before the step at where such a store can land and
// afterwards clears the flag in what the step stored there.
#include <array>
#include <cstdint>
#include <vector>

#include "machine/machine.h"

namespace vmm {

class TrapFlagTraces {
 public:
  // Before the step (with guest debugging off, so that RFLAGS.TF read now
  // is the guest's own): remembers the registers, the bytes where an event
  // frame would go, and whether the instruction is a pushf.
  explicit TrapFlagTraces(Machine& machine);
  // After the step: clears TF where the step stored it and the guest's own
  // flags had it clear. Returns how many stores were corrected.
  int remove();

 private:
  // A 64-bit event frame ends at `top`: the stack aligned down to 16, at
  // TSS.RSP0 for an event from CPL3 (no IST: the vectors a user instruction
  // or a timer raises do not use one in the guests this runs).
  static constexpr uint64_t kFrameBytes = 48;  // with an error code
  struct FrameSite {
    uint64_t top = 0;
    std::array<uint8_t, kFrameBytes> before{};
  };
  bool remove_from_frame(const FrameSite& site);
  bool remove_from_pushf();

  Machine& machine_;
  kvm_regs regs_before_{};
  kvm_sregs sregs_before_{};
  std::vector<FrameSite> sites_;
  uint64_t pushf_bytes_ = 0;  // 8 (pushfq), 2 (66 pushf) or 0 (no pushf)
};

// Decodes the instruction at rip enough to see a pushf: its operand size in
// bytes (2 with an 0x66 prefix, else 8 in 64-bit mode), or 0 if it is not one.
uint64_t pushf_operand_bytes(std::span<const uint8_t> code);

}  // namespace vmm
