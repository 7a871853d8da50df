#include "replay/searched_position.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "librr/error.h"
#include "probe/probe.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"
#include "replay/kernel_return_stop.h"
#include "replay/memory_shadow.h"
#include "replay/x86_prefixes.h"

namespace vmm {
namespace {

// An x86 instruction is at most 15 bytes.
constexpr uint64_t kMaxInstructionBytes = 15;

enum class InstructionKind { kRepString, kLeavesKernel, kShadowsInterrupts, kOther };

// What matters of the instruction `bytes` starts for finding a stop there:
// a rep-string instruction (a stop may cut one mid-way, at a count the
// host's single step never lands on), one that leaves kernel mode (iret,
// sysret, sysexit: the search steps over non-matching hits with the host's
// CPL0 single step, which on kvm_pvm runs on into user code after an
// iretq), one after which the CPU holds off interrupts for an instruction
// (sti, popf, mov/pop ss: a host single step there leaves an interrupt
// shadow a full-speed run does not have, docs/record-replay.md,
// "Kernel-return stops"), or anything else.
InstructionKind classify(std::span<const uint8_t> bytes) {
  const InstructionPrefixes prefixes = scan_prefixes(bytes);
  if (prefixes.opcode >= bytes.size()) return InstructionKind::kOther;
  const uint8_t byte = bytes[prefixes.opcode];
  const bool string_op = (byte >= 0x6c && byte <= 0x6f) || (byte >= 0xa4 && byte <= 0xa7) ||
                         (byte >= 0xaa && byte <= 0xaf);
  if (prefixes.rep && string_op) return InstructionKind::kRepString;
  const uint8_t next = prefixes.opcode + 1 < bytes.size() ? bytes[prefixes.opcode + 1] : 0;
  if (byte == 0xcf || (byte == 0x0f && (next == 0x07 || next == 0x35)))
    return InstructionKind::kLeavesKernel;  // iret(q), sysret, sysexit
  const bool loads_ss = byte == 0x17 || (byte == 0x8e && ((next >> 3) & 7) == 2);
  if (byte == 0xfb || byte == 0x9d || loads_ss) return InstructionKind::kShadowsInterrupts;
  return InstructionKind::kOther;
}

// Whether the instruction `bytes` starts exits to the VMM whenever it runs:
// port I/O (in, out, ins, outs) or hlt, i.e. it ends the stretch since the
// last landmark.
bool exits_to_vmm(std::span<const uint8_t> bytes) {
  const InstructionPrefixes prefixes = scan_prefixes(bytes);
  if (prefixes.opcode >= bytes.size()) return false;
  const uint8_t byte = bytes[prefixes.opcode];
  return byte == 0xf4 || (byte >= 0xe4 && byte <= 0xe7) || (byte >= 0xec && byte <= 0xef) ||
         (byte >= 0x6c && byte <= 0x6f);
}

// The bytes of the instruction at RIP, up to the end of its page (the rest
// may not be mapped; a prefix run that long is no instruction the guest
// executes); nullopt when RIP is unreadable.
std::optional<std::vector<uint8_t>> instruction_bytes_at(Machine& machine, const kvm_sregs& sregs,
                                                         uint64_t rip) {
  try {
    const uint64_t to_page_end = MemoryShadow::kPageSize - (rip % MemoryShadow::kPageSize);
    return read_guest_virtual(machine, sregs, rip, std::min(kMaxInstructionBytes, to_page_end));
  } catch (const librr::Error&) {
    return std::nullopt;
  }
}

std::optional<InstructionKind> instruction_at(Machine& machine, const kvm_sregs& sregs,
                                              uint64_t rip) {
  const auto bytes = instruction_bytes_at(machine, sregs, rip);
  if (!bytes) return std::nullopt;
  return classify(*bytes);
}

}  // namespace

namespace {

// The probe's 64-bit CPL0 measurement, if it found that code emulated.
std::optional<probe::ModeSpeed> emulated_kernel_code() {
  const probe::ProbeResult probe = probe::load_or_run_probe();
  const probe::ModeSpeed* cpl0 = probe.speed("long64_cpl0");
  if (!cpl0 || !cpl0->ok() || cpl0->execution != "emulated") return std::nullopt;
  return *cpl0;
}

}  // namespace

std::optional<double> kernel_stop_search_rate() {
  const std::optional<probe::ModeSpeed> cpl0 = emulated_kernel_code();
  if (!HardwareBreakpointSupport::from_probe().honoured_at_cpl0 || !cpl0 ||
      cpl0->instructions_per_second <= 0)
    return std::nullopt;
  return cpl0->instructions_per_second;
}

bool kernel_code_emulated() { return emulated_kernel_code().has_value(); }

bool stretch_searchable(uint64_t host_ns, double instructions_per_second,
                        uint64_t instructions_per_hit) {
  return static_cast<double>(host_ns) * 1e-9 * instructions_per_second * 2 <=
         static_cast<double>(kMaxSearchHits * instructions_per_hit);
}

bool stop_searchable(Machine& machine, const VcpuState& state) {
  const kvm_sregs& sregs = state.sregs;
  if (!in_64_bit_kernel_mode(sregs)) return false;
  const kvm_vcpu_events& events = state.events;
  if (events.exception.injected || events.exception.pending || events.interrupt.injected ||
      events.nmi.injected || events.nmi.pending)
    return false;
  return instruction_at(machine, sregs, state.regs.rip) == InstructionKind::kOther;
}

bool searchable_instruction_at(Machine& machine, const kvm_sregs& sregs, uint64_t rip) {
  const auto bytes = instruction_bytes_at(machine, sregs, rip);
  return bytes && classify(*bytes) == InstructionKind::kOther && !exits_to_vmm(*bytes);
}

bool starts_with_rep_string(std::span<const uint8_t> bytes) {
  return classify(bytes) == InstructionKind::kRepString;
}

bool at_rep_string_instruction(Machine& machine) {
  return instruction_at(machine, machine.vcpu().get_sregs_for_mode(),
                        machine.vcpu().get_regs().rip) == InstructionKind::kRepString;
}

bool at_port_or_halt_instruction(Machine& machine) {
  const auto bytes = instruction_bytes_at(machine, machine.vcpu().get_sregs_for_mode(),
                                          machine.vcpu().get_regs().rip);
  return bytes && exits_to_vmm(*bytes);
}

uint64_t hash_guest_pages(Machine& machine, std::span<const uint64_t> gfns,
                          const kvm_regs* registers_first) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state) throw librr::Error("hash_guest_pages: out of memory for the XXH3 state");
  XXH3_64bits_reset(state.get());
  if (registers_first) XXH3_64bits_update(state.get(), registers_first, sizeof *registers_first);
  const GuestMemory memory = machine.memory();
  for (const uint64_t gfn : gfns) {
    const uint8_t* page = memory.translate(gfn * MemoryShadow::kPageSize, MemoryShadow::kPageSize);
    if (!page)
      throw librr::Error(fmt::format(
          "pages digest: page {:#x} lies outside guest memory ({} bytes)", gfn, memory.size()));
    XXH3_64bits_update(state.get(), page, MemoryShadow::kPageSize);
  }
  return XXH3_64bits_digest(state.get());
}

void PagesWrittenSincePosition::restart() {
  // A machine without tracking (a test's) replays no stop with implied
  // pages: gfns() would say so.
  if (!machine_.tracks_dirty_pages()) return;
  machine_.take_dirty_log();
  written_.take();
}

std::vector<uint64_t> PagesWrittenSincePosition::gfns() {
  written_.merge(machine_.take_dirty_log());
  return written_.listed();
}

SearchTarget SearchTarget::of(const librr::SearchedStop& stop) {
  return SearchTarget{stop.rip,         std::nullopt,  stop.registers_xxh3, &stop.pages,
                      stop.hash_mask(), stop.one_hash, stop.pages_implied};
}

std::optional<SearchTarget> SearchTarget::of(const librr::AsyncPosition& stop) {
  if (const auto* searched = std::get_if<librr::SearchedStop>(&stop.memory)) return of(*searched);
  const auto* pages = std::get_if<librr::PagesDigest>(&stop.memory);
  if (!pages) return std::nullopt;
  librr::ByteReader in(stop.vcpu_state, "async vCPU state");
  const kvm_regs registers = VcpuState::load(in).regs;
  return SearchTarget{registers.rip, registers, 0, pages};
}

bool at_searched_stop(Machine& machine, const SearchTarget& target,
                      PagesWrittenSincePosition* written) {
  const kvm_regs now = machine.vcpu().get_regs();
  if (target.pages_implied && !written)
    throw librr::Error(fmt::format(
        "searched stop at RIP {:#x}: its pages are implied, and nothing tracks them here",
        target.rip));
  if (target.one_hash) {
    if (now.rip != target.rip) return false;
    const std::vector<uint64_t> implied =
        target.pages_implied ? written->gfns() : std::vector<uint64_t>{};
    const std::vector<uint64_t>& gfns = target.pages_implied ? implied : target.pages->gfns;
    return (hash_guest_pages(machine, gfns, &now) & target.hash_mask) == target.pages->xxh3;
  }
  const bool registers_match =
      target.registers ? std::memcmp(&*target.registers, &now, sizeof now) == 0
                       : now.rip == target.rip && (general_registers_xxh3(now) &
                                                   target.hash_mask) == target.registers_xxh3;
  return registers_match &&
         (hash_guest_pages(machine, target.pages->gfns) & target.hash_mask) == target.pages->xxh3;
}

SearchResult run_to_searched_stop(Machine& machine, const SearchTarget& target, uint64_t& hits,
                                  PagesWrittenSincePosition* written, SearchBounds bounds) {
  const uint64_t breakpoint[] = {target.rip};
  // Armed by hand below, two KVM_SET_GUEST_DEBUG per hit (the step over it,
  // the breakpoint again); this disarms however the search ends. Measured
  // on ticks: the generic InstructionStepper took ~23 ioctls per hit.
  const ArmedHardwareBreakpoints disarm_at_end(machine, {});
  const ReexecutionDeadline deadline(machine, bounds.time_limit_ns);
  uint64_t hits_here = 0;
  for (;;) {
    if (at_searched_stop(machine, target, written)) return SearchResult::kFound;
    // Not the stop: a first check right after the previous position, or a hit
    // of the breakpoint. Step over the instruction there (the breakpoint
    // would fire again: kvm_pvm ignores RFLAGS.RF) with the host's single
    // step, at CPL0 an exit after one instruction (stop_searchable() keeps
    // instructions that leave CPL0 out).
    if (machine.vcpu().get_regs().rip == target.rip) {
      arm_hardware_breakpoints(machine, {}, /*single_step=*/true);
      const Machine::Exit step = enter_until_stopped(machine, deadline.at());
      if (step.kind == Machine::Exit::Kind::kAsynchronous) return SearchResult::kTimedOut;
      if (step.kind == Machine::Exit::Kind::kSynchronous) return SearchResult::kLandmark;
      if (!stopped_at_hardware_breakpoint(machine)) return SearchResult::kTerminal;
    }
    arm_hardware_breakpoints(machine, breakpoint);
    const Machine::Exit exit = enter_until_stopped(machine, deadline.at());
    if (exit.kind == Machine::Exit::Kind::kAsynchronous) return SearchResult::kTimedOut;
    if (exit.kind == Machine::Exit::Kind::kSynchronous) return SearchResult::kLandmark;
    if (!stopped_at_hardware_breakpoint(machine)) return SearchResult::kTerminal;
    if (++hits_here > bounds.max_hits) return SearchResult::kTooManyHits;
    ++hits;
  }
}

}  // namespace vmm
