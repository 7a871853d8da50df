#pragma once
// Kernel-return stops (log format 2.8, librr::KernelReturn): an interrupt
// delivered where the guest kernel returns to user mode, at a point named
// without a branch counter: the first return to user mode through the
// kernel's iretq at `return_rip` after the N-th kernel entry the recorder
// counted since the previous position (kernel_entry_counter.h). Replay gets
// there by re-executing the stretch with the same entries in the debug
// registers, so nothing of the state is logged but a hash of the general
// registers to check arrival (docs/record-replay.md, "Kernel-return stops").
//
// Why: a guest whose user code enters the kernel often (system calls, page
// faults) but never exits to the VMM would otherwise be stopped by a signal
// at an arbitrary instruction, and such a stop costs its whole vCPU state
// and the memory written since the previous position (ticks: ~65 bytes per
// stop compressed, against ~15 here: the return address and an 8-byte hash).
#include <cstdint>
#include <optional>

#include "librr/events.h"
#include "machine/machine.h"
#include "replay/hardware_breakpoints.h"

namespace vmm {

// XXH3-64 of kvm_regs as KVM lays it out (KernelReturn::registers_xxh3).
uint64_t general_registers_xxh3(const kvm_regs& regs);
// The registers are the ones the stop logged (through its hash's width).
inline bool registers_match(const kvm_regs& regs, const librr::KernelReturn& stop) {
  return (general_registers_xxh3(regs) & stop.hash_mask()) == stop.registers_xxh3;
}

enum class KernelReturnSearch {
  kReached,       // the vCPU stands right after the return, in user mode
  kLandmark,      // the guest made a synchronous exit first: not where record was
  kStopped,       // any other exit (the message is the machine's)
  kTimedOut,      // kReexecutionLimitNs passed without the return or a landmark
  kEnteredAgain,  // an arrival at one of the entries after the last counted one came first
};

// Replay: from the current position, runs the guest counting arrivals at
// `entries.addresses` exactly as the recorder did (each one a DEBUG exit,
// then a single step over it with the debug registers off), and after the
// `entries.count`-th watches `return_rip` until it returns to user mode,
// then steps over that return (return_to_user_step.h); with count 0, the
// first return after the position. Also the base of a
// DeltaBase::return_to_user delta. The recorder's own re-run gives up
// sooner than replay (`time_limit_ns`) and, with `no_more_entries`, at an
// arrival at one of the entries after the counted ones (kEnteredAgain):
// the recorded stop, which counted none more, came before it, so the return
// would lie beyond the stop.
KernelReturnSearch run_to_kernel_return(Machine& machine, const librr::CodeArrivals& entries,
                                        uint64_t return_rip,
                                        uint64_t time_limit_ns = kReexecutionLimitNs,
                                        bool no_more_entries = false);

// Record: the kernel's return to user mode, found in its code: the first
// iretq (REX.W CF) at most `max_bytes` after `entry` (a kernel-entry
// handler; the test kernel's common trap code ends with the one iretq, ~500
// bytes after its #UD stub). Nothing if none or the code cannot be read. The
// recorder never single-steps the guest to find it: a search by single steps
// through a Linux page fault left memory that a full-speed re-execution did
// not reproduce (docs/record-replay.md, "Kernel-return stops"). Bytes 48 CF
// inside another instruction are harmless: a debug register there never
// fires, and each hit is checked to return to user mode anyway.
std::optional<uint64_t> find_iretq_after(Machine& machine, const kvm_sregs& sregs, uint64_t entry,
                                         uint64_t max_bytes);

}  // namespace vmm
