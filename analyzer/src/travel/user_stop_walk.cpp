// The stretch before a logged asynchronous stop in user mode, on hosts that
// do not honour debug registers at CPL3 (kvm_pvm): replay installs such a
// stop without executing the stretch, and nothing can stop native user code
// at it. A breakpoint search must still see every kernel instruction the
// stretch executes before the stop, including kernel code that user mode
// entered (a system call, a page fault) without I/O.
//
// The recorder counted those entries (AsyncPosition::kernel_entries: arrivals
// at the kernel's exception entry points, with debug registers). The walk
// single-steps kernel code, runs user code natively with the same entry
// points armed (they run at CPL0, where the host honours them), counts the
// same arrivals, and once the last counted entry's kernel code is about to
// return to user mode, installs the stop: after that only user code runs
// before it. Costs: the stretch's kernel instructions at single-step speed
// (~10^4-10^5 per second), its user code at native speed.
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "travel/time_traveler_impl.h"

namespace analyzer {
namespace {

using Outcome = vmm::ReplaySession::InstructionOutcome;

// The vCPU is in user mode, or at an iretq whose frame returns there (the
// next instruction executed at CPL0 is then a kernel entry).
bool leaving_kernel(const kvm_regs& regs, const kvm_sregs& sregs, const AddressSpace& space) {
  if ((sregs.cs.selector & 3) == 3) return true;
  const auto code = space.read_obj<std::array<uint8_t, 2>>(regs.rip);
  if (!code || (*code)[0] != 0x48 || (*code)[1] != 0xcf) return false;  // REX.W iret
  const auto frame_cs = space.read_obj<uint64_t>(regs.rsp + 8);
  return frame_cs && (*frame_cs & 3) == 3;
}

}  // namespace

Outcome TimeTraveler::Impl::walk_towards_user_stop() {
  vmm::Machine& machine = replay->machine();
  const kvm_regs regs = machine.vcpu().get_regs();
  const kvm_sregs sregs = machine.vcpu().get_sregs();
  constexpr uint64_t kCr0Paging = 1ull << 31;
  const AddressSpace space(*memory, sregs.cr3, (sregs.cr0 & kCr0Paging) != 0);
  const bool first = search.first;
  const bool leaving = leaving_kernel(regs, sregs, space);
  const auto step = [&] {
    const TimedScope timed(stats.steps);
    return replay->session().step_instruction(instruction_stepper(), first);
  };
  if (*search.kernel_entries_left == 0) {
    // The last entry's kernel code, by steps, then only user code until
    // the stop: install it, as replay does.
    if (!leaving) return step();
    const TimedScope timed(stats.advances);
    const bool more = replay->session().advance(/*delivered_already=*/!first);
    return more ? Outcome::kReachedAsyncStop : Outcome::kEnded;
  }
  // Entries still to come. With the code addresses armed too, kernel code
  // runs at full speed between hits; else it is stepped.
  const bool code_armed = search.armed.size() > search.kernel_entries.size();
  const bool on_breakpoint =
      std::find(search.armed.begin(), search.armed.end(), regs.rip) != search.armed.end();
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
