#pragma once
// Asynchronous stops that replay finds again instead of installing
// (docs/record-replay.md, "Searched positions"). Record logs the vCPU state
// and a PagesDigest (the pages written since the previous stop, hashed)
// instead of a memory delta; replay re-executes the stretch before the stop
// with a hardware breakpoint at its RIP and takes the hit whose general
// registers equal the logged ones and whose listed pages hash the same.
//
// That is cheap only where the stop's code is re-executed cheaply and the
// breakpoint is honoured: on kvm_pvm, kernel code (CPL0) is emulated at ~1 M
// instructions/s, so a stretch of a few ms holds a few thousand instructions
// and at most that many hits (~10 us each); where CPL0 runs natively a hot
// loop could hit the breakpoint ~10^8 times per second, so the recorder keeps
// the installed form there (it asks the probe, never assumes this host).
#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>

#include "librr/events.h"
#include "machine/machine.h"
#include "machine/vcpu_state.h"

namespace vmm {

// From the cached probe: where hardware breakpoints are honoured at CPL0
// and 64-bit CPL0 code is emulated (so a stretch's hits are bounded by its
// emulated instructions), the measured CPL0 instruction rate; else nullopt:
// record installs every stop.
std::optional<double> kernel_stop_search_rate();
inline bool kernel_stop_search_cheap() { return kernel_stop_search_rate().has_value(); }

// A search gives up after this many breakpoint hits (a divergence, not a
// hang: a loop that waits for the very interrupt being positioned never
// leaves by itself). Each hit is at least one instruction, and the recorder
// searches a stop only when its stretch, at the probe's CPL0 rate, holds at
// most half as many instructions.
inline constexpr uint64_t kMaxSearchHits = 50'000;
// Whether a stretch of `host_ns` of record time stays within that bound.
bool stretch_searchable(uint64_t host_ns, double instructions_per_second);

// Whether the recorder may log the stop `state` as a searched position:
// 64-bit kernel mode, nothing being delivered (no pending or injected event,
// which a breakpoint hit would not reproduce), and not at a rep-string
// instruction or one that leaves kernel mode (searched_position.cpp). Reads the instruction at RIP
// through the guest's page tables; an unreadable RIP answers false.
bool stop_searchable(Machine& machine, const VcpuState& state);

// The vCPU is at a rep-string instruction (read through its page tables;
// false when RIP is unreadable).
bool at_rep_string_instruction(Machine& machine);
// The vCPU is at an instruction that exits to the VMM whenever it runs (port
// I/O or hlt: the next landmark); false when RIP is unreadable.
bool at_port_or_halt_instruction(Machine& machine);

// XXH3-64 of the listed pages, concatenated in order (PagesDigest::xxh3).
// Throws librr::Error for a page outside guest memory.
uint64_t hash_guest_pages(Machine& machine, std::span<const uint64_t> gfns);

// True if the vCPU is at the searched stop: general registers equal
// `recorded` and the digest's pages hash to its value.
bool at_searched_stop(Machine& machine, const kvm_regs& recorded, const librr::PagesDigest& digest);

enum class SearchResult {
  kFound,        // the vCPU is at the stop (nothing executed past it)
  kLandmark,     // the guest made a synchronous exit first: the stop was not found
  kTooManyHits,  // kMaxSearchHits hits, none of them the stop
  kTerminal,     // the machine stopped (shutdown, internal error)
};
// Runs the guest from where it is with a breakpoint at the stop's RIP,
// stepping over each hit that is not the stop, until at_searched_stop().
// `hits` counts the breakpoint hits (for statistics). Debug registers are
// off again when it returns or throws.
SearchResult run_to_searched_stop(Machine& machine, const kvm_regs& recorded,
                                  const librr::PagesDigest& digest, uint64_t& hits);

}  // namespace vmm
