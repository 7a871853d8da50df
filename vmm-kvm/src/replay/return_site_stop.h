#pragma once
// Return-site stops: a stop in kernel code moved to where the running
// function returns, so that replay finds it again cheaply
// (docs/record-replay.md, "Return-site stops").
//
// A signal stops the vCPU at an arbitrary instruction, often inside a loop.
// Logged as a searched position (searched_position.h) such a stop costs
// replay one breakpoint hit per pass of that loop since the previous
// position (ticks' SYS_KSPIN: ~1700 per stop); installed, it costs the vCPU
// state and the memory the stretch wrote (a Linux boot: ~500 bytes per stop,
// nine tenths of its log). Instead, while an interrupt is due at a stop in
// kernel code, the recorder puts a debug register on a return site (the
// return address of the next call in the code ahead, else the innermost one
// on the kernel stack) and delivers the interrupt where the guest first gets
// there with interrupts enabled; that point is logged as a searched position
// whose RIP is the return site. A return site is hit once per call, not once
// per pass of the callee's loops.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "machine/machine.h"

namespace vmm {

// A return site is reached by a return (each pass of a loop through it runs
// the call and the return at least), the instruction after a rep-string one
// by that instruction: a search for either hits it at most once every two
// instructions, so the stretch before it may be twice as long as one before
// an arbitrary instruction (stretch_searchable).
inline constexpr uint64_t kInstructionsPerReturnSiteHit = 2;

// How far above RSP the stack is scanned for a return address.
inline constexpr uint64_t kReturnSiteScanBytes = 512;
// How far the code after RIP is decoded for the next call.
inline constexpr uint64_t kForwardScanBytes = 256;
inline constexpr size_t kForwardScanInstructions = 48;

// The instruction after a rep-string instruction at `rip`, else the return
// address of the first call in the straight-line code from `rip` on
// (decoded with Capstone, up to kForwardScanInstructions or an
// unconditional jump, return or the like), if a search may stop there: in
// a loop that calls a function at every pass, a site hit once per pass, long
// before the function running the loop returns (a Linux boot's
// free_reserved_area, which frees init memory page by page for ~40 ms).
std::optional<uint64_t> next_site_ahead(Machine& machine, const kvm_sregs& sregs, uint64_t rip);

// The innermost value on the stack (from RSP up, at most
// kReturnSiteScanBytes, within mapped memory) that follows a call
// instruction (e8 rel32, or ff /2 through a register) in the guest's code
// and whose instruction a search may stop at (searchable_instruction_at).
// A stale value that only looks like a return address costs nothing but the
// watch: the recorder times it out and stops where it is.
std::optional<uint64_t> innermost_return_site(Machine& machine, const kvm_sregs& sregs,
                                              const kvm_regs& regs);

}  // namespace vmm
