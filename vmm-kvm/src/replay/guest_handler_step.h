#pragma once
// Single steps at CPL3 on hosts that deliver the step's debug exception (#DB)
// to the guest's own IDT instead of exiting to the VMM (`rr-vmm probe`:
// single_step delivery "guest-idt", strategy debug_exceptions_cpl3
// "catch-at-guest-handler"; kvm_pvm runs CPL3 natively). A hardware
// breakpoint on the guest's #DB handler, which runs at CPL0 where the host
// honours debug registers, stops the vCPU as the handler is entered. The
// VMM then undoes the exception delivery as if it never happened: registers
// from the frame the CPU pushed, CS/SS and the debug registers as they were,
// and the stack bytes the frame overwrote put back. The guest never runs
// its handler, so nothing of it is visible in memory digests.
#include <cstdint>
#include <span>
#include <vector>

#include "machine/machine.h"

namespace vmm {

// The bytes of error code a 64-bit CPU pushes below the frame for exception
// `vector` (#DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX: 8; else 0).
uint64_t error_code_bytes(uint8_t vector);

// The five quadwords a 64-bit CPU pushes when an exception or interrupt
// enters a handler at another privilege level (no error code for #DB, #BP).
struct InterruptFrame {
  static constexpr uint64_t kBytes = 5 * 8;
  uint64_t rip = 0, cs = 0, rflags = 0, rsp = 0, ss = 0;
  static InterruptFrame parse(std::span<const uint8_t> bytes);
  // The handler's `iretq`, as far as the general registers go.
  void return_to(kvm_regs& regs) const;
};

// Guest-virtual memory through the vCPU's page tables (4-level paging, 2 MiB
// and 1 GiB pages; identity when paging is off). Throws librr::Error naming
// the address when it is not mapped or not in RAM.
std::vector<uint8_t> read_guest_virtual(Machine& machine, const kvm_sregs& sregs, uint64_t address,
                                        uint64_t length);
void write_guest_virtual(Machine& machine, const kvm_sregs& sregs, uint64_t address,
                         std::span<const uint8_t> bytes);

// Where the guest's handler for `vector` starts and where the CPU will put
// its frame when the exception comes from CPL3 (TSS rsp0 or the gate's IST
// stack, aligned down to 16, minus the frame).
struct GuestHandler {
  uint64_t entry = 0;
  uint64_t frame_address = 0;
  static GuestHandler for_vector(Machine& machine, const kvm_sregs& sregs, uint8_t vector);
};

// The segment state `selector` loads from the guest's GDT, as the CPU's
// iretq to CPL3 set it (an interrupt frame keeps selectors, not the
// descriptor caches). Throws librr::Error for a selector outside the GDT.
kvm_segment segment_from_gdt(Machine& machine, const kvm_sregs& sregs, uint64_t selector);

enum class HandlerStepResult {
  kStepped,      // the step ended at CPL3 with a #DB, caught and undone
  kSynchronous,  // the instruction made a PIO/MMIO/HLT exit
  kOther,        // it stopped otherwise (a DEBUG exit at CPL0, ...): see run_state()
};
// One single step with the #DB caught at the guest's handler if it comes
// from CPL3: a step at CPL3, and also a step at CPL0 whose instruction
// returns to user mode (iretq), after which the host lets one user
// instruction run and trap into the guest.
HandlerStepResult step_caught_at_guest_handler(Machine& machine);

}  // namespace vmm
