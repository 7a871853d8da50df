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
#include "replay/hardware_breakpoints.h"
#include "replay/memory_shadow.h"

namespace vmm {

// From the cached probe: where hardware breakpoints are honoured at CPL0
// and 64-bit CPL0 code is emulated (so a stretch's hits are bounded by its
// emulated instructions), the measured CPL0 instruction rate; else nullopt:
// record installs every stop.
std::optional<double> kernel_stop_search_rate();
inline bool kernel_stop_search_cheap() { return kernel_stop_search_rate().has_value(); }
// From the cached probe: 64-bit CPL0 code is emulated on this host.
bool kernel_code_emulated();

// A search gives up after this many breakpoint hits (a divergence, not a
// hang: a loop that waits for the very interrupt being positioned never
// leaves by itself). Each hit is at least one instruction, and the recorder
// searches a stop only when its stretch, at the probe's CPL0 rate, holds at
// most half as many instructions (hits, for a site hit at most once every
// `instructions_per_hit` instructions).
inline constexpr uint64_t kMaxSearchHits = 50'000;
// Whether a stretch of `host_ns` of record time stays within that bound.
bool stretch_searchable(uint64_t host_ns, double instructions_per_second,
                        uint64_t instructions_per_hit = 1);

// Whether the recorder may log the stop `state` as a searched position:
// 64-bit kernel mode, nothing being delivered (no pending or injected event,
// which a breakpoint hit would not reproduce), and not at a rep-string
// instruction or one that leaves kernel mode (searched_position.cpp). Reads the instruction at RIP
// through the guest's page tables; an unreadable RIP answers false.
bool stop_searchable(Machine& machine, const VcpuState& state);

// Whether a search may stop at and step over the instruction at `rip` (read
// through `sregs`' page tables): not a rep-string instruction, nothing that
// leaves kernel mode, exits to the VMM (port I/O, hlt) or holds off
// interrupts for the next instruction (sti, popf, loads of SS). False when
// unreadable.
bool searchable_instruction_at(Machine& machine, const kvm_sregs& sregs, uint64_t rip);

// Whether `bytes` start with a rep-string instruction.
bool starts_with_rep_string(std::span<const uint8_t> bytes);
// The vCPU is at a rep-string instruction (read through its page tables;
// false when RIP is unreadable).
bool at_rep_string_instruction(Machine& machine);
// The vCPU is at an instruction that exits to the VMM whenever it runs (port
// I/O or hlt: the next landmark); false when RIP is unreadable.
bool at_port_or_halt_instruction(Machine& machine);

// Replay's list of the pages the guest wrote since it left the previous
// position, for searched stops whose pages are implied (log format 2.12):
// KVM's dirty log (the machine must track dirty pages), as the recorder
// keeps it (the same DirtyPages), discarded where the guest leaves a
// position (restart()) and added up at each look (gfns()). Measured on a
// Linux boot: equal to the recorder's listing at all 2,626 searched stops.
class PagesWrittenSincePosition {
 public:
  explicit PagesWrittenSincePosition(Machine& machine)
      : machine_(machine), written_(machine.memory().size() / MemoryShadow::kPageSize) {}
  void restart();
  // The pages written since restart(), ascending.
  std::vector<uint64_t> gfns();

 private:
  Machine& machine_;
  DirtyPages written_;
};

// XXH3-64 of the listed pages, concatenated in order (PagesDigest::xxh3),
// after `registers_first` as KVM lays them out if given (a SearchedStop's one
// hash, log format 2.11). Throws librr::Error for a page outside guest memory.
uint64_t hash_guest_pages(Machine& machine, std::span<const uint64_t> gfns,
                          const kvm_regs* registers_first = nullptr);

// What a search looks for: a breakpoint address and, at a hit there, the
// general registers (in full for a PagesDigest stop, as an XXH3-64 for a
// SearchedStop, format 2.9, or its low 32 bits, 2.10) and the pages digest.
struct SearchTarget {
  uint64_t rip = 0;
  std::optional<kvm_regs> registers;  // PagesDigest stops: the logged vCPU state's
  uint64_t registers_xxh3 = 0;        // SearchedStop: general_registers_xxh3
  const librr::PagesDigest* pages = nullptr;
  // The bits of a computed XXH3-64 the logged hashes keep (SearchedStop::hash_mask).
  uint64_t hash_mask = ~0ull;
  // SearchedStop::one_hash: `pages->xxh3` covers the registers, then the pages.
  bool one_hash = false;
  // SearchedStop::pages_implied: the pages are those written since the
  // previous position (PagesWrittenSincePosition), not `pages->gfns`.
  bool pages_implied = false;
  // The target of a searched stop (memory kind 3 or 5); nullopt for any
  // other kind. Throws librr::Error for a kind-3 stop whose state does not parse.
  static std::optional<SearchTarget> of(const librr::AsyncPosition& stop);
  // The target of a searched stop (kinds 5-7 and 9); it points into `stop`.
  static SearchTarget of(const librr::SearchedStop& stop);
};

// True if the vCPU is at the searched stop: its general registers are the
// target's and the digest's pages hash to its value. `written` gives the
// pages of a target whose pages are implied (required then).
bool at_searched_stop(Machine& machine, const SearchTarget& target,
                      PagesWrittenSincePosition* written = nullptr);

enum class SearchResult {
  kFound,        // the vCPU is at the stop (nothing executed past it)
  kLandmark,     // the guest made a synchronous exit first: the stop was not found
  kTooManyHits,  // kMaxSearchHits hits, none of them the stop
  kTimedOut,     // kReexecutionLimitNs passed without the stop or a landmark
  kTerminal,     // the machine stopped (shutdown, internal error)
};
// How far a search goes before it gives up: replay's bounds by default; the
// recorder's own search (RecordSession::searched_by_rerun) gives up far sooner.
struct SearchBounds {
  uint64_t max_hits = kMaxSearchHits;
  uint64_t time_limit_ns = kReexecutionLimitNs;
};
// Runs the guest from where it is with a breakpoint at the stop's RIP,
// stepping over each hit that is not the stop, until at_searched_stop().
// `hits` counts the breakpoint hits (for statistics). Debug registers are
// off again when it returns or throws.
SearchResult run_to_searched_stop(Machine& machine, const SearchTarget& target, uint64_t& hits,
                                  PagesWrittenSincePosition* written = nullptr,
                                  SearchBounds bounds = {});

}  // namespace vmm
