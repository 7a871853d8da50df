// Code breakpoints found by running the replay at full speed with the
// addresses in the vCPU's debug registers, instead of single-stepping and
// comparing rip after every instruction (~16-90k steps/s here against ~1M
// emulated instructions/s at CPL0).
//
// A run with debug registers does not count instructions, so a hit is named
// by what the run did count: `A@pc#k`, the k-th arrival at pc after the
// exact position A where the stretch began (or after the previous hit, when
// the set of addresses changed there: `A@pc#k@pc2#j`), see PositionName.
// seek_named() reaches such a name with the same kind of run, so a hit costs
// nothing beyond the run itself; its exact step count is worked out only if
// someone asks for position() there (make_exact: restore the checkpoint
// before A, replay to A, single-step counting arrivals, compare registers).
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

PositionName with_link(const PositionName& from, uint64_t pc, uint64_t ordinal) {
  PositionName name = from;
  name.arrivals.push_back({pc, ordinal});
  return name;
}

// A name whose arrival link the rest of the recording does not reach.
PositionPastEnd arrivals_past_end(uint64_t pc, uint64_t seen, const PositionName& counted_from,
                                  const librr::Position& end) {
  return PositionPastEnd(
      fmt::format("rip reaches {:#x} only {} times after {} before the end of the recording ({})",
                  pc, seen, counted_from.to_string(), end.to_string()));
}

// The async stop logged right after `position`'s (L, a), if that is the
// next record of the log: where it is (a kernel-return stop logs no state:
// it is in user mode, right after the kernel's return; a searched stop of
// format 2.9 names its rip, in kernel mode) and the kernel
// entries counted before it.
struct NextAsyncStop {
  bool in_user_mode = false;
  std::optional<uint64_t> rip;
  std::optional<librr::CodeArrivals> kernel_entries;
};
std::optional<NextAsyncStop> next_async_stop(vmm::ReplayMachine& replay,
                                             const librr::Position& position) {
  const librr::Event* next = replay.replayer().peek();
  const auto* async = next ? std::get_if<librr::AsyncPosition>(next) : nullptr;
  if (!async || async->pos != librr::Position{position.landmark, position.async_seq + 1, 0} ||
      async->vcpu_state_format != vmm::kVcpuStateFormat)
    return std::nullopt;
  if (std::holds_alternative<librr::KernelReturn>(async->memory))
    return NextAsyncStop{true, std::nullopt, async->kernel_entries};
  if (const auto* searched = std::get_if<librr::SearchedStop>(&async->memory))
    return NextAsyncStop{false, searched->rip, async->kernel_entries};  // kernel mode
  librr::ByteReader in(async->vcpu_state, "async vCPU state");
  const vmm::VcpuState state = vmm::VcpuState::load(in);
  return NextAsyncStop{(state.sregs.cs.selector & 3) == 3, state.regs.rip, async->kernel_entries};
}

}  // namespace

TimeTraveler::Impl::StretchPlan TimeTraveler::Impl::plan_stretch(const std::set<uint64_t>& code,
                                                                 const AddressSpace& space) {
  if (!hardware_breakpoints) hardware_breakpoints = vmm::HardwareBreakpointSupport::from_probe();
  const vmm::HardwareBreakpointSupport& support = *hardware_breakpoints;
  StretchPlan plan;
  const auto async = next_async_stop(*replay, position);
  plan.next_stop_at_cpl3 = async && async->in_user_mode && !support.honoured_at_cpl3;
  if (!support.honoured_at_cpl0) return plan;
  std::vector<uint64_t> addresses(code.begin(), code.end());
  if (!support.honoured_at_cpl3)
    for (const uint64_t address : addresses) {
      const auto translation = space.translate(address);
      if (translation && translation->user) return plan;
    }
  if (plan.next_stop_at_cpl3) {
    // Walked with the counted kernel entries armed, and the addresses
    // beside them if all fit (walk_towards_user_stop); without the
    // recorder's count, the kernel part before the first return to user
    // mode only, by single steps (search_code).
    if (async->kernel_entries) {
      plan.kernel_entries = async->kernel_entries->addresses;
      plan.kernel_entries_before_stop = async->kernel_entries->count;
      std::vector<uint64_t> armed = plan.kernel_entries;
      for (const uint64_t address : addresses)
        if (std::find(armed.begin(), armed.end(), address) == armed.end()) armed.push_back(address);
      plan.armed = armed.size() <= vmm::kHardwareBreakpointSlots ? armed : plan.kernel_entries;
    }
    return plan;
  }
  if (async && async->rip && !code.count(*async->rip)) addresses.push_back(*async->rip);
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

// Starts a debug-register run (or a walk to a stop in user mode) of the
// stretch at the current exact position.
void TimeTraveler::Impl::begin_stretch(StretchPlan plan, uint64_t rip) {
  search.in_stretch = true;
  search.anchor = position;
  search.armed = std::move(*plan.armed);
  search.kernel_entries_left = plan.kernel_entries_before_stop;
  search.kernel_entries = std::move(plan.kernel_entries);
  search.counted_from = PositionName(position);
  search.counted = search.code;
  search.arrivals.clear();
  // A name's first link counts its base itself (docs/analyzer.md, "Positions").
  if (search.code.count(rip)) search.arrivals[rip] = 1;
  search.counted_since_anchor = search.counted;
  search.arrivals_since_anchor = search.arrivals;
  search.first = position.steps == 0;
  if (!search.kernel_entries_left) return;
  // The recorder counted an arrival at the stretch's own rip too; from a
  // mid-step position, the entries stepped through since (L, a) lie behind.
  if (position.steps == 0) {
    count_kernel_entry(rip);
  } else {
    if (kernel_entries_stepped > *search.kernel_entries_left)
      throw librr::Error(fmt::format(
          "{} lies after {} kernel entries since {}, the recording counted {} before the stop",
          position.to_string(), kernel_entries_stepped,
          librr::Position{position.landmark, position.async_seq, 0}.to_string(),
          *search.kernel_entries_left));
    *search.kernel_entries_left -= kernel_entries_stepped;
  }
}

TimeTraveler::Impl::SearchStop TimeTraveler::Impl::search_code(CodeHit& hit) {
  for (;;) {
    if (search.in_stretch) {
      const SearchStop stop = run_stretch(hit);
      if (stop != SearchStop::kLimit) return stop;
    }
    if (search.limit && position >= *search.limit) return SearchStop::kLimit;
    if (interrupt_requested()) return SearchStop::kInterrupted;
    StretchPlan plan = plan_stretch(search.code, current_address_space());
    if (plan.armed) {
      begin_stretch(std::move(plan), read_rip());
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
          hit = {PositionName(position), read_rip(), current_vcpu().regs};
          return SearchStop::kHit;
        }
        break;
      }
      if (!step_once()) return SearchStop::kEnd;
      if (interrupt_requested()) return SearchStop::kInterrupted;
      if (search.code.count(read_rip())) {
        hit = {PositionName(position), read_rip(), current_vcpu().regs};
        return SearchStop::kHit;
      }
    } while (position.steps > 0);
  }
}

void TimeTraveler::Impl::rearm_search(const std::set<uint64_t>& code) {
  if (hit_name && search.in_stretch &&
      std::includes(search.counted.begin(), search.counted.end(), code.begin(), code.end())) {
    search.code = code;  // all counted since counted_from already: names go on
    return;
  }
  if (hit_name && search.in_stretch) {
    StretchPlan plan = plan_stretch(code, current_address_space());
    if (plan.armed) {
      // Arrivals at the new addresses before the hit were not counted:
      // names go on from the hit itself.
      search.code = code;
      search.armed = std::move(*plan.armed);
      search.counted_from = *hit_name;
      search.counted = code;
      search.arrivals.clear();
      std::erase_if(search.counted_since_anchor,
                    [&](uint64_t address) { return !code.count(address); });
      return;
    }
  }
  // The rest of the stretch is single-stepped, which needs a step count.
  make_exact();
  search = CodeSearch{};
  search.code = code;
}

// kLimit here means: the stretch ended at a new exact position, not a hit.
TimeTraveler::Impl::SearchStop TimeTraveler::Impl::run_stretch(CodeHit& hit) {
  vmm::Machine& machine = replay->machine();
  const auto started = Clock::now();
  for (bool at_position = !machine_past_position;; at_position = false) {
    // Reading the whole vCPU state settles a landmark's pending port read;
    // after a DEBUG exit or a step, rip alone is enough (and much cheaper).
    const uint64_t rip = at_position ? read_rip() : machine.vcpu().get_regs().rip;
    const bool on_breakpoint =
        std::find(search.armed.begin(), search.armed.end(), rip) != search.armed.end();
    Outcome outcome;
    if (search.kernel_entries_left) {
      outcome = walk_towards_user_stop();
    } else if (on_breakpoint) {
      // Resuming here would stop again at once: one instruction without them.
      const TimedScope timed(stats.steps);
      outcome = replay->session().step_instruction(instruction_stepper(), search.first);
    } else {
      const TimedScope timed(stats.debug_runs);
      const vmm::ArmedHardwareBreakpoints armed(machine, search.armed);
      outcome = replay->session().run_to_debug_exit(search.first);
    }
    search.first = false;
    moved();
    if (outcome == Outcome::kDebugExit) ++stats.debug_exits.count;
    if (outcome == Outcome::kStepped || outcome == Outcome::kDebugExit) {
      machine_past_position = true;
      hit_name.reset();
      const uint64_t now_at = machine.vcpu().get_regs().rip;
      // A step over a kernel instruction that faults (a page fault in kernel
      // code, which the recorder's debug registers counted at the handler's
      // first instruction) may end after that instruction.
      if (search.kernel_entries_left)
        if (const auto entry =
                entry_arrived_at(search.kernel_entries, rip, now_at, outcome == Outcome::kStepped))
          count_kernel_entry(*entry);
      if (search.counted.count(now_at)) ++search.arrivals[now_at];
      const bool since_anchor = search.counted_since_anchor.count(now_at) != 0;
      if (since_anchor) ++search.arrivals_since_anchor[now_at];
      if (search.code.count(now_at)) {
        hit = {since_anchor
                   ? PositionName(search.anchor, {{now_at, search.arrivals_since_anchor[now_at]}})
                   : with_link(search.counted_from, now_at, search.arrivals[now_at]),
               now_at, current_vcpu().regs};
        hit_name = hit.name;
        hit_regs = hit.regs;
        return SearchStop::kHit;
      }
      if (outcome == Outcome::kDebugExit &&
          std::find(search.armed.begin(), search.armed.end(), now_at) == search.armed.end())
        throw librr::Error(
            fmt::format("a debug exit at {:#x}, which is none of the armed breakpoints (after {})",
                        now_at, search.counted_from.to_string()));
      continue;  // the async stop's rip: the next call compares the registers
    }
    search.in_stretch = false;
    position = replay->timeline().position();
    machine_past_position = false;
    hit_name.reset();
    if (outcome == Outcome::kEnded) return SearchStop::kEnd;
    reached_base(started);
    if (search.code.count(read_rip())) {
      hit = {PositionName(position), read_rip(), current_vcpu().regs};
      return SearchStop::kHit;
    }
    return SearchStop::kLimit;
  }
}

void TimeTraveler::Impl::land_on(const CodeHit& hit) {
  if (hit.name.is_exact()) {
    seek_exact(hit.name.base);
    return;
  }
  seek_named(hit.name);
  if (std::memcmp(&current_vcpu().regs, &hit.regs, sizeof hit.regs) != 0)
    throw librr::Error(fmt::format(
        "replaying to {} again reaches other registers than the breakpoint hit found there",
        hit.name.to_string()));
}

void TimeTraveler::Impl::run_to_arrival(uint64_t pc, uint64_t ordinal, bool count_current,
                                        const PositionName& name_so_far) {
  const std::set<uint64_t> code{pc};
  uint64_t seen = count_current && !hit_name && read_rip() == pc ? 1 : 0;
  if (hit_name)
    rearm_search(code);  // from the previous link's arrival, inside its stretch
  else
    search = CodeSearch::over(code);
  while (seen < ordinal) {
    if (search.in_stretch) {
      CodeHit hit;
      const SearchStop stop = run_stretch(hit);
      if (stop == SearchStop::kHit) ++seen;
      if (stop != SearchStop::kEnd) continue;
    } else {
      StretchPlan plan = plan_stretch(code, current_address_space());
      if (plan.armed) {
        begin_stretch(std::move(plan), read_rip());
        continue;
      }
      // Where the debug registers cannot see every arrival: single steps,
      // as a name's arrivals were always counted before (a search would
      // have named a hit here exactly).
      bool ended = false;
      do {
        if (!step_once()) {
          ended = true;
          break;
        }
        if (read_rip() == pc && ++seen == ordinal) return;
      } while (position.steps > 0);
      if (!ended) continue;
    }
    throw arrivals_past_end(pc, seen, name_so_far, end);
  }
}

void TimeTraveler::Impl::seek_named(const PositionName& target) {
  if (target.is_exact()) {
    seek_exact(target.base);
    return;
  }
  if (hit_name && *hit_name == target) return;
  if (hit_name) machine_past_position = true;
  seek_exact(target.base);
  search = CodeSearch{};
  PositionName so_far(target.base);
  for (size_t i = 0; i < target.arrivals.size(); ++i) {
    const PcArrival& link = target.arrivals[i];
    run_to_arrival(link.pc, link.ordinal, i == 0, so_far);
    so_far.arrivals.push_back(link);
  }
  // The search names the state after its own counting; keep the name asked for.
  if (hit_name) hit_name = target;
}

void TimeTraveler::Impl::step_to_arrivals(const PositionName& name) {
  const TimedScope timed(stats.resolves);
  if (hit_name) machine_past_position = true;
  hit_name.reset();
  seek_exact(name.base);
  PositionName so_far(name.base);
  for (size_t i = 0; i < name.arrivals.size(); ++i) {
    const PcArrival& link = name.arrivals[i];
    uint64_t seen = i == 0 && read_rip() == link.pc ? 1 : 0;
    while (seen < link.ordinal) {
      if (!step_once()) throw arrivals_past_end(link.pc, seen, so_far, end);
      if (read_rip() == link.pc) ++seen;
    }
    so_far.arrivals.push_back(link);
  }
}

void TimeTraveler::Impl::make_exact() {
  // At a named hit the machine reached by steps already (exact), or not at one.
  if (!hit_name || !machine_past_position) return;
  const PositionName name = *hit_name;
  const kvm_regs regs = hit_regs;
  const CodeSearch named_search = search;
  step_to_arrivals(name);
  if (std::memcmp(&current_vcpu().regs, &regs, sizeof regs) != 0)
    throw librr::Error(fmt::format(
        "single steps from {} reach {} at {} with other registers than the debug registers' run "
        "found there (stepping and the debug registers disagree)",
        name.base.to_string(), name.to_string(), position.to_string()));
  // The same state: the search that named it can go on from here, and
  // here() keeps the name it gave.
  search = named_search;
  hit_name = name;
  hit_regs = regs;
}

}  // namespace analyzer
