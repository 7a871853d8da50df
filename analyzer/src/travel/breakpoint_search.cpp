// Code breakpoints found by running the replay at full speed with the
// addresses in the vCPU's debug registers, instead of single-stepping and
// comparing rip after every instruction (~16-90k steps/s here against ~1M
// emulated instructions/s at CPL0).
//
// A position is exact only with its step count, which a run with debug
// registers does not give. So a search stops at the hit knowing only "the
// k-th arrival at pc after the exact position A, before the next logged
// position" (a CodeHit); resolve() then restores the checkpoint before A,
// replays to A and single-steps to the k-th arrival: one checkpoint interval
// of replay plus the steps of one stretch, paid once per reported hit.
//
// Where the debug registers cannot see every arrival, the stretch (from one
// logged position to the next) is single-stepped instead:
//  * hardware breakpoints not honoured at CPL0 (see `rr-vmm probe`);
//  * more addresses than slots;
//  * an address the guest could execute at CPL3 on a host that does not
//    honour them there (kvm_pvm): its page is user-accessible now;
//  * the stretch ends at a logged async stop that the vCPU cannot be stopped
//    at: replay normally installs such a stop without executing the stretch
//    before it, so a search must execute it and recognise the stop by its
//    registers, which takes a breakpoint on the stop's rip (a free slot, CPL0).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <vector>

#include "machine/vcpu_state.h"
#include "travel/time_traveler_impl.h"

namespace analyzer {
namespace {

using Clock = std::chrono::steady_clock;
using Outcome = vmm::ReplaySession::InstructionOutcome;

librr::Position base_of(const librr::Position& p) { return {p.landmark, p.async_seq, 0}; }

// The registers of the async stop logged right after `position`'s (L, a), if
// that is the next record of the log.
std::optional<vmm::VcpuState> next_async_stop(vmm::ReplayMachine& replay,
                                              const librr::Position& position) {
  const librr::Event* next = replay.replayer().peek();
  const auto* async = next ? std::get_if<librr::AsyncPosition>(next) : nullptr;
  if (!async || async->pos != librr::Position{position.landmark, position.async_seq + 1, 0} ||
      async->vcpu_state_format != vmm::kVcpuStateFormat)
    return std::nullopt;
  librr::ByteReader in(async->vcpu_state, "async vCPU state");
  return vmm::VcpuState::load(in);
}

}  // namespace

TimeTraveler::Impl::StretchPlan TimeTraveler::Impl::plan_stretch(const std::set<uint64_t>& code,
                                                                 const AddressSpace& space) {
  if (!hardware_breakpoints) hardware_breakpoints = vmm::HardwareBreakpointSupport::from_probe();
  const vmm::HardwareBreakpointSupport& support = *hardware_breakpoints;
  StretchPlan plan;
  const auto async = next_async_stop(*replay, position);
  plan.next_stop_at_cpl3 =
      async && (async->sregs.cs.selector & 3) == 3 && !support.honoured_at_cpl3;
  if (!support.honoured_at_cpl0 || plan.next_stop_at_cpl3) return plan;
  std::vector<uint64_t> addresses(code.begin(), code.end());
  if (!support.honoured_at_cpl3)
    for (const uint64_t address : addresses) {
      const auto translation = space.translate(address);
      if (translation && translation->user) return plan;
    }
  if (async && !code.count(async->regs.rip)) addresses.push_back(async->regs.rip);
  if (addresses.size() <= vmm::kHardwareBreakpointSlots) plan.armed = std::move(addresses);
  return plan;
}

AddressSpace TimeTraveler::Impl::current_address_space() const {
  const kvm_sregs& sregs = current_vcpu().sregs;
  constexpr uint64_t kCr0Paging = 1ull << 31;
  return AddressSpace(*memory, sregs.cr3, (sregs.cr0 & kCr0Paging) != 0);
}

// The instruction at rip is iretq (REX.W CF): the kernel returns to user mode.
static bool at_iretq(const AddressSpace& space, uint64_t rip) {
  const auto bytes = space.read_obj<std::array<uint8_t, 2>>(rip);
  return bytes && (*bytes)[0] == 0x48 && (*bytes)[1] == 0xcf;
}

TimeTraveler::Impl::SearchStop TimeTraveler::Impl::search_code(CodeSearch& search, CodeHit& hit) {
  for (;;) {
    if (search.in_stretch) {
      const SearchStop stop = run_stretch(search, hit);
      if (stop != SearchStop::kLimit) return stop;
    }
    if (search.limit && position >= *search.limit) return SearchStop::kLimit;
    if (interrupt_requested()) return SearchStop::kInterrupted;
    const vmm::VcpuState& state = current_vcpu();
    constexpr uint64_t kCr0Paging = 1ull << 31;
    const AddressSpace space(*memory, state.sregs.cr3, (state.sregs.cr0 & kCr0Paging) != 0);
    StretchPlan plan = plan_stretch(search.code, space);
    if (plan.armed) {
      search.in_stretch = true;
      search.anchor = position;
      search.armed = std::move(*plan.armed);
      search.arrivals.clear();
      search.first = position.steps == 0;
      continue;
    }
    // Single steps to the end of the stretch, each one an exact position.
    do {
      if (plan.next_stop_at_cpl3 && position.steps > 0 &&
          ((current_vcpu().sregs.cs.selector & 3) == 3 ||
           at_iretq(current_address_space(), read_rip()))) {
        // Back in user mode (or about to return there: stepping over the
        // iretq lets one user instruction run, which may trap straight back
        // into the kernel) before an async stop this host cannot stop the
        // vCPU at (native CPL3 loops run ~10^9 instructions/s, steps ~10^4):
        // install the stop as replay does. Kernel code entered from user
        // mode before it without I/O (a system call, a page fault) is not
        // searched (docs/analyzer.md).
        if (!advance()) return SearchStop::kEnd;
        if (search.code.count(read_rip())) {
          hit = {position, read_rip(), 0, current_vcpu().regs};
          return SearchStop::kHit;
        }
        break;
      }
      if (!step_once()) return SearchStop::kEnd;
      if (interrupt_requested()) return SearchStop::kInterrupted;
      if (search.code.count(read_rip())) {
        hit = {position, read_rip(), 0, current_vcpu().regs};
        return SearchStop::kHit;
      }
    } while (position.steps > 0);
  }
}

// kLimit here means: the stretch ended at a new exact position, not a hit.
TimeTraveler::Impl::SearchStop TimeTraveler::Impl::run_stretch(CodeSearch& search, CodeHit& hit) {
  vmm::Machine& machine = replay->machine();
  const auto started = Clock::now();
  for (bool at_position = true;; at_position = false) {
    // Reading the whole vCPU state settles a landmark's pending port read;
    // after a DEBUG exit or a step, rip alone is enough (and much cheaper).
    const uint64_t rip = at_position ? read_rip() : machine.vcpu().get_regs().rip;
    const bool on_breakpoint =
        std::find(search.armed.begin(), search.armed.end(), rip) != search.armed.end();
    Outcome outcome;
    if (on_breakpoint) {
      // Resuming here would stop again at once: one instruction without them.
      outcome = replay->session().step_instruction(instruction_stepper(), search.first);
    } else {
      vmm::arm_hardware_breakpoints(machine, search.armed);
      try {
        outcome = replay->session().run_to_debug_exit(search.first);
      } catch (...) {
        vmm::arm_hardware_breakpoints(machine, {});
        throw;
      }
      vmm::arm_hardware_breakpoints(machine, {});
    }
    search.first = false;
    moved();
    if (outcome == Outcome::kStepped || outcome == Outcome::kDebugExit) {
      machine_past_position = true;
      const uint64_t now_at = machine.vcpu().get_regs().rip;
      if (search.code.count(now_at)) {
        hit = {search.anchor, now_at, ++search.arrivals[now_at], current_vcpu().regs};
        return SearchStop::kHit;
      }
      if (outcome == Outcome::kDebugExit &&
          std::find(search.armed.begin(), search.armed.end(), now_at) == search.armed.end())
        throw librr::Error(
            fmt::format("a debug exit at {:#x}, which is none of the armed breakpoints (after {})",
                        now_at, search.anchor.to_string()));
      continue;  // the async stop's rip: the next call compares the registers
    }
    search.in_stretch = false;
    position = replay->timeline().position();
    machine_past_position = false;
    if (outcome == Outcome::kEnded) return SearchStop::kEnd;
    reached_base(started);
    if (search.code.count(read_rip())) {
      hit = {position, read_rip(), 0, current_vcpu().regs};
      return SearchStop::kHit;
    }
    return SearchStop::kLimit;
  }
}

void TimeTraveler::Impl::resolve(const CodeHit& hit) {
  if (hit.ordinal == 0) {
    // On a logged position; the machine may have moved since.
    if (machine_past_position || position != hit.anchor) {
      machine_past_position = true;
      seek_exact(hit.anchor);
    }
    return;
  }
  seek_exact(hit.anchor);
  uint64_t arrivals = 0;
  while (arrivals < hit.ordinal) {
    if (!step_once() || base_of(position) != base_of(hit.anchor))
      throw librr::Error(fmt::format(
          "a breakpoint at {:#x} was reached {} times after {}, but single steps from there "
          "reach it only {} times before {} (stepping and the debug registers disagree)",
          hit.pc, hit.ordinal, hit.anchor.to_string(), arrivals, position.to_string()));
    if (read_rip() == hit.pc) ++arrivals;
  }
  if (std::memcmp(&current_vcpu().regs, &hit.regs, sizeof hit.regs) != 0)
    throw librr::Error(fmt::format(
        "the {}th arrival at {:#x} after {} ({}) has other registers than the breakpoint hit",
        hit.ordinal, hit.pc, hit.anchor.to_string(), position.to_string()));
}

}  // namespace analyzer
