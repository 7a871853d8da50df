// The VMM's record/replay choices, derived only from measured facts; each
// choice carries a one-line rationale quoting the facts it rests on.
#include <fmt/format.h>

#include "probe/probe.h"

namespace vmm::probe {
namespace {

std::string breakpoint_search(const ProbeResult& result, int cpl, std::string& rationale) {
  const HwBreakpointCheck* hw = result.hw_breakpoint_at(cpl);
  const SwBreakpointCheck* sw = result.sw_breakpoint_at(cpl);
  const SingleStepCheck* step = result.single_step_at(cpl);
  std::string facts;
  if (hw && hw->ok() && hw->honoured) {
    rationale =
        "hardware breakpoints are honoured (" + hw->outcome + "); no guest memory is patched";
    return "hw";
  }
  facts = hw == nullptr || !hw->ok() ? "hardware breakpoints unknown"
                                     : "hardware breakpoints not honoured (" + hw->outcome + ")";
  if (sw && sw->ok() && sw->usable) {
    rationale =
        facts + (sw->caught_at_handler
                     ? fmt::format("; int3 is delivered to the guest's #BP handler, where a "
                                   "hardware breakpoint stops the vCPU (trapped RIP int3{:+}); "
                                   "unwinding the frame resumes",
                                   sw->rip_offset)
                     : fmt::format("; int3 stops the vCPU (exit {}, RIP int3{:+}) and resumes",
                                   sw->exit_reason_name, sw->rip_offset));
    return "sw";
  }
  facts += sw == nullptr || !sw->ok()
               ? "; software breakpoints unknown"
               : "; software breakpoints unusable (exit " + sw->exit_reason_name + ")";
  if (step && step->ok() && (step->one_instruction_per_run || step->caught_at_handler)) {
    rationale = facts + fmt::format("; single-step is exact{} ({:.0f} steps/s)",
                                    step->one_instruction_per_run
                                        ? " (exit " + step->exit_reason_name + ")"
                                        : " when caught at the guest's #DB handler",
                                    step->steps_per_second);
    return "singlestep";
  }
  rationale = facts + "; single-step is not exact or unknown";
  return "none";
}

std::string debug_exceptions_cpl3(const ProbeResult& result) {
  const SwBreakpointCheck* sw = result.sw_breakpoint_at(3);
  const SingleStepCheck* step = result.single_step_at(3);
  const bool direct = (sw && sw->ok() && sw->usable && !sw->caught_at_handler) ||
                      (step && step->ok() && step->one_instruction_per_run);
  if (direct) return "exit-to-vmm";
  const bool caught = (sw && sw->ok() && sw->usable && sw->caught_at_handler) ||
                      (step && step->ok() && step->caught_at_handler);
  return caught ? "catch-at-guest-handler" : "unusable";
}

std::string execution_of(const ProbeResult& result, const char* mode) {
  const ModeSpeed* speed = result.speed(mode);
  return speed && speed->ok() ? speed->execution : "unknown";
}

}  // namespace

Strategy derive_strategy(const ProbeResult& result) {
  Strategy strategy;
  const PerfCheck& perf = result.perf;
  if (perf.ok() && perf.counts_guest_branches) {
    strategy.positioning = "branch-counter";
    strategy.positioning_rationale = fmt::format(
        "a host branch counter saw {} branches of a {}-branch guest loop: count branches, "
        "stop short of the target, then step",
        perf.guest_branches_counted, perf.guest_branches_expected);
  } else {
    strategy.positioning = "state-snapshot";
    std::string why;
    if (!perf.ok())
      why = "the performance-counter check is unknown (" + perf.error + ")";
    else if (!perf.branches_available)
      why = "no branch counter (" + perf.branches_error + ")";
    else
      why = fmt::format("the branch counter missed guest branches ({} of {})",
                        perf.guest_branches_counted, perf.guest_branches_expected);
    strategy.positioning_rationale =
        why +
        ": a position is an instruction address plus a snapshot of guest state, found "
        "again by breakpoint search";
  }
  strategy.breakpoint_search_cpl0 =
      breakpoint_search(result, 0, strategy.breakpoint_rationale_cpl0);
  strategy.breakpoint_search_cpl3 =
      breakpoint_search(result, 3, strategy.breakpoint_rationale_cpl3);
  strategy.debug_exceptions_cpl3 = debug_exceptions_cpl3(result);
  strategy.cpl0_execution = execution_of(result, "long64_cpl0");
  strategy.cpl3_execution = execution_of(result, "long64_cpl3");

  if (!result.cpuid.ok())
    strategy.guest_cpuid = "unknown";
  else
    strategy.guest_cpuid = result.cpuid.takes_effect ? "kvm-set-cpuid2" : "guest-command-line";

  const DirtyLogCheck* log0 = result.dirty_log_at(0);
  const DirtyLogCheck* log3 = result.dirty_log_at(3);
  strategy.dirty_tracking = log0 && log3 && log0->ok() && log3->ok() && log0->works && log3->works
                                ? "dirty-log"
                                : "compare-memory";

  if (result.syscall.ok() && result.syscall.reaches_cpl0)
    strategy.system_calls = "syscall";
  else if (result.ud2_exception.ok() && result.ud2_exception.reaches_cpl0)
    strategy.system_calls = "exception";
  else
    strategy.system_calls = "unknown";
  return strategy;
}

}  // namespace vmm::probe
