// The stretch before a logged asynchronous stop in user mode, on hosts that
// do not honour debug registers at CPL3 (kvm_pvm): replay installs such a
// stop without executing the stretch, and nothing can stop native user code
// at it. A breakpoint search must still see every kernel instruction the
// stretch executes before the stop, including kernel code that user mode
// entered (a system call, a page fault) without I/O.
//
// The recorder counted those entries (AsyncPosition::kernel_entries: arrivals
// at the kernel's exception entry points, with debug registers). The walk
// arms the same entry points (they run at CPL0, where the host honours
// them), plus the searched addresses when all fit in the debug registers,
// and counts the same arrivals: kernel code runs at full speed between hits
// (single-stepped when the addresses do not fit), user code natively. Once
// the last counted entry's kernel code, single-stepped, is about to return
// to user mode, it installs the stop: after that only user code runs before
// it. Costs: one DEBUG exit and one step per entry, the last entry's kernel
// code at single-step speed (~10^4-10^5 instructions per second).
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "disasm/capstone.h"
#include "replay/instruction_stepper.h"
#include "replay/return_to_user_step.h"
#include "travel/time_traveler_impl.h"

namespace analyzer {
namespace {

using Outcome = vmm::ReplaySession::InstructionOutcome;

}  // namespace

Outcome TimeTraveler::Impl::walk_towards_user_stop() {
  vmm::Machine& machine = replay->machine();
  const uint64_t rip = machine.vcpu().get_regs().rip;
  const bool first = search.first;
  // In user mode, or at the kernel's iretq back there: the next instruction
  // executed at CPL0 is a kernel entry.
  const bool leaving = vmm::current_cpl(machine) == 3 || vmm::at_return_to_user(machine);
  const auto step = [&] {
    const TimedScope timed(stats.steps);
    return replay->session().step_instruction(instruction_stepper(), first);
  };
  if (*search.kernel_entries_left == 0) {
    // The last entry's kernel code, by steps, then only user code until
    // the stop: install it, as replay does.
    if (!leaving) return step();
    const TimedScope timed(stats.advances);
    // A kernel-return stop is right after this return: step it, as replay does.
    if (!first && replay->session().enter_kernel_return_stop_here())
      return Outcome::kReachedAsyncStop;
    const bool more = replay->session().advance(/*delivered_already=*/!first);
    return more ? Outcome::kReachedAsyncStop : Outcome::kEnded;
  }
  // Entries still to come. With the code addresses armed too, kernel code
  // runs at full speed between hits; else it is stepped.
  const bool code_armed = search.armed.size() > search.kernel_entries.size();
  const bool on_breakpoint =
      std::find(search.armed.begin(), search.armed.end(), rip) != search.armed.end();
  if (on_breakpoint || (!leaving && !code_armed)) return step();
  const TimedScope timed(stats.debug_runs);
  const vmm::ArmedHardwareBreakpoints armed(machine, search.armed);
  return replay->session().run_to_debug_exit(first);
}

const librr::CodeArrivals* TimeTraveler::Impl::kernel_entries_of_next_stop() const {
  const librr::Event* next = replay->replayer().peek();
  const auto* async = next ? std::get_if<librr::AsyncPosition>(next) : nullptr;
  if (!async || !async->kernel_entries ||
      async->pos != librr::Position{position.landmark, position.async_seq + 1, 0})
    return nullptr;
  return &*async->kernel_entries;
}

// A single step over an int or a faulting instruction in user mode stops
// after the handler's first instruction, not at it (seen on the demo guest:
// int 0x80 at 0x20098f, the step ends at 0x1000c5, its entry being at
// 0x1000c3), so comparing the rip after the step with the entries misses the
// arrival the recorder's debug registers counted; a timeline from a named
// position after it then ran past a kernel-return stop (2026-11-27).
std::optional<uint64_t> TimeTraveler::Impl::entry_arrived_at(std::span<const uint64_t> entries,
                                                             uint64_t from, uint64_t to,
                                                             bool stepped) const {
  const auto is_entry = [&](uint64_t rip) {
    return std::ranges::find(entries, rip) != entries.end();
  };
  if (is_entry(to)) return to;
  // A step off an entry (its arrival counted already) that lands past its
  // first instruction is the handler going on, not another arrival.
  if (!stepped || is_entry(from)) return std::nullopt;
  constexpr size_t kMaxInstructionBytes = 15;
  const AddressSpace space = current_address_space();
  const vmm::CapstoneHandle capstone(CS_MODE_64);
  for (const uint64_t entry : entries) {
    if (to <= entry || to - entry > kMaxInstructionBytes) continue;
    std::array<uint8_t, kMaxInstructionBytes> code{};
    const size_t read = space.read(entry, code);
    vmm::DisassembledInstructions first;
    first.count = cs_disasm(capstone.get(), code.data(), read, entry, 1, &first.first);
    if (first.count == 1 && entry + first.first[0].size == to &&
        vmm::current_cpl(replay->machine()) == 0)
      return entry;
  }
  return std::nullopt;
}

void TimeTraveler::Impl::count_kernel_entry(uint64_t rip) {
  if (std::find(search.kernel_entries.begin(), search.kernel_entries.end(), rip) ==
      search.kernel_entries.end())
    return;
  if (*search.kernel_entries_left == 0)
    throw librr::Error(fmt::format(
        "the replay enters the kernel at {:#x} more often after {} than the recording counted "
        "before its next stop (the recorder's kernel-entry count does not match)",
        rip, search.anchor.to_string()));
  --*search.kernel_entries_left;
}

}  // namespace analyzer
