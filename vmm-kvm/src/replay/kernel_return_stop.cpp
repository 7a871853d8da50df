#include "replay/kernel_return_stop.h"

#include <xxhash.h>

#include <algorithm>

#include "librr/error.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"
#include "replay/return_to_user_step.h"

namespace vmm {
namespace {

// One instruction with the debug registers off: the breakpoint the vCPU
// stands on would stop it again (the host ignores RFLAGS.RF).
bool step_over_breakpoint(Machine& machine) {
  return is_debug_exit(machine, run_with_hardware_breakpoints(machine, {}, /*single_step=*/true));
}

}  // namespace

std::optional<uint64_t> find_iretq_after(Machine& machine, const kvm_sregs& sregs, uint64_t entry,
                                         uint64_t max_bytes) {
  constexpr uint64_t kPage = 4096;
  std::vector<uint8_t> code;
  // Page by page: the scan ends where the code stops being mapped.
  for (uint64_t at = entry; at < entry + max_bytes;) {
    const uint64_t length = std::min(kPage - at % kPage, entry + max_bytes - at);
    try {
      const std::vector<uint8_t> bytes = read_guest_virtual(machine, sregs, at, length);
      code.insert(code.end(), bytes.begin(), bytes.end());
    } catch (const librr::Error&) {
      break;
    }
    at += length;
  }
  for (size_t i = 0; i + 1 < code.size(); ++i)
    if ((code[i] & 0xf8) == 0x48 && code[i + 1] == 0xcf) return entry + i;
  return std::nullopt;
}

uint64_t general_registers_xxh3(const kvm_regs& regs) { return XXH3_64bits(&regs, sizeof regs); }

KernelReturnSearch run_to_kernel_return(Machine& machine, const librr::CodeArrivals& entries,
                                        uint64_t return_rip, uint64_t time_limit_ns,
                                        bool no_more_entries) {
  const ReexecutionDeadline deadline(machine, time_limit_ns);
  for (uint32_t seen = 0; seen < entries.count;) {
    const Machine::Exit exit =
        run_with_hardware_breakpoints(machine, entries.addresses, false, deadline.at());
    if (exit.kind == Machine::Exit::Kind::kAsynchronous) return KernelReturnSearch::kTimedOut;
    if (exit.kind == Machine::Exit::Kind::kSynchronous) return KernelReturnSearch::kLandmark;
    if (!stopped_at_one_of(machine, exit, entries.addresses)) return KernelReturnSearch::kStopped;
    // The last one is not stepped here: only the return is armed from now
    // on, so the entry's instruction runs as any other (unless the entries
    // stay armed to catch one more).
    if ((++seen < entries.count || no_more_entries) && !step_over_breakpoint(machine))
      return KernelReturnSearch::kStopped;
  }
  std::vector<uint64_t> watched = {return_rip};
  if (no_more_entries)
    watched.insert(watched.end(), entries.addresses.begin(), entries.addresses.end());
  for (;;) {
    const Machine::Exit exit =
        run_with_hardware_breakpoints(machine, watched, false, deadline.at());
    if (exit.kind == Machine::Exit::Kind::kAsynchronous) return KernelReturnSearch::kTimedOut;
    if (exit.kind == Machine::Exit::Kind::kSynchronous) return KernelReturnSearch::kLandmark;
    if (!stopped_at_one_of(machine, exit, watched)) return KernelReturnSearch::kStopped;
    if (machine.vcpu().get_regs().rip != return_rip) return KernelReturnSearch::kEnteredAgain;
    if (at_return_to_user(machine))
      return step_return_to_user(machine) ? KernelReturnSearch::kReached
                                          : KernelReturnSearch::kStopped;
    // A return to kernel mode (a nested exception's) through the same iretq.
    if (!step_over_breakpoint(machine)) return KernelReturnSearch::kStopped;
  }
}

}  // namespace vmm
