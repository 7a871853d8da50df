#pragma once
// A single step over the kernel's return to user mode (iretq to CPL3) on a
// host that emulates CPL0 and runs CPL3 natively (kvm_pvm, `rr-vmm probe`:
// single_step_edges.iretq_step_runs_user_code). There the host's single step
// belongs to its CPL0 emulator: after the iretq the user code runs on at
// full speed until it next enters the kernel (measured: a step over the
// iretq ran two user instructions and the ud2 after them). TF in the popped
// RFLAGS would stop one user instruction late.
//
// So the step plants an int3 (0xcc) at the address the iretq returns to.
// The iretq completes on the host, the int3 raises #BP in the kernel (on
// real hardware #GP where the guest's vector-3 gate is DPL0, as in the test
// kernel; kvm_pvm delivers #BP there too), and a hardware breakpoint on each
// of the two handlers (CPL0: honoured) stops the vCPU before it runs. The delivery is then undone
// as for #DB steps (guest_handler_step.h): registers as the iretq left them, CS/SS from the GDT,
// the stack bytes the frame overwrote and the code byte put back. Nothing of it remains in guest
// memory or registers.
#include "machine/machine.h"

namespace vmm {

// True if the vCPU stands on an iretq (REX.W CF) whose frame returns to CPL3.
bool at_return_to_user(Machine& machine);

// With the vCPU on such an iretq (at_return_to_user): true if
// step_return_to_user() can step it: the return address and the kernel stack
// below the frame read (a return to code not yet mapped cannot: its fetch
// faults after the iretq).
bool return_to_user_steppable(Machine& machine);

// Steps over that iretq. False (nothing done) when the return address or
// the kernel stack cannot be read: the caller steps as usual, and the
// instruction faults as it did when recorded. Throws librr::Error if the
// vCPU stopped anywhere else than expected.
bool step_return_to_user(Machine& machine);

}  // namespace vmm
