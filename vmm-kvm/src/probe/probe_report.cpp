// The human-readable table printed by `rr-vmm probe`.
#include <fmt/format.h>

#include "probe/probe.h"

namespace vmm::probe {
namespace {

class Table {
 public:
  void row(const std::string& item, const std::string& result, const std::string& detail) {
    text_ += fmt::format("  {:<24} {:<14} {}\n", item, result, detail);
  }
  // Unknown items show the error instead of a result.
  bool unknown(const std::string& item, const Measured& measured) {
    if (measured.ok()) return false;
    row(item, "unknown", measured.error);
    return true;
  }
  void heading(const std::string& title) { text_ += "\n" + title + "\n"; }
  std::string& text() { return text_; }

 private:
  std::string text_;
};

std::string millions(double per_second) { return fmt::format("{:.1f} M/s", per_second / 1e6); }

std::string join(const std::vector<int>& values) {
  std::string text;
  for (int value : values) text += (text.empty() ? "" : ",") + std::to_string(value);
  return text.empty() ? "none" : text;
}

}  // namespace

std::string format_table(const ProbeResult& result) {
  Table table;
  const HostInfo& host = result.host;
  table.text() = fmt::format("rr-vmm probe: measured {} in {:.2f} s{} (cache key {})\n",
                             result.measured_at, result.total_seconds,
                             result.from_cache ? ", read from cache" : "", result.cache_key);
  table.heading("Host");
  table.row("kernel", host.kernel_release, "");
  table.row("cpu", host.cpu_vendor, host.cpu_model);
  table.row("kvm backend", host.kvm_backend, host.kvm_identity);
  if (!table.unknown("kvm api", host)) {
    table.row("kvm api", std::to_string(host.api_version), "");
    std::string capabilities;
    for (const auto& [name, value] : host.capabilities)
      capabilities += fmt::format("{}={} ", name, value);
    table.row("capabilities", "", capabilities);
  }

  table.heading("Execution (dec/jnz loop)");
  for (const ModeSpeed& speed : result.execution)
    if (!table.unknown(speed.mode, speed))
      table.row(speed.mode, speed.execution,
                fmt::format("{} instructions ({} measured)",
                            millions(speed.instructions_per_second), speed.instructions));

  table.heading("Debug facilities (64-bit guest)");
  for (const SingleStepCheck& step : result.single_step) {
    const std::string item = fmt::format("single-step cpl{}", step.cpl);
    if (!table.unknown(item, step))
      table.row(item,
                step.one_instruction_per_run ? "exact"
                : step.caught_at_handler     ? "exact (catch)"
                                             : "not exact",
                fmt::format("delivery {}, first exit {}, {:.0f} steps/s", step.delivery,
                            step.exit_reason_name, step.steps_per_second));
  }
  if (const StepEdgesCheck& edges = result.step_edges; !table.unknown("single-step edges", edges))
    table.row("single-step edges",
              edges.iretq_step_runs_user_code ? "iretq runs on" : "iretq stops",
              fmt::format("iretq to CPL3 ran {} user instructions; TF in event frames cpl0 {}, "
                          "cpl3 {}, in pushf cpl3 {}; rep stosb x5: {} steps cpl0, {} cpl3",
                          edges.user_instructions_run, edges.trap_flag_in_event_frame_cpl0,
                          edges.trap_flag_in_event_frame_cpl3, edges.trap_flag_in_pushf_cpl3,
                          edges.rep_steps_cpl0, edges.rep_steps_cpl3));
  for (const HwBreakpointCheck& hw : result.hw_breakpoint) {
    const std::string item = fmt::format("hw breakpoint cpl{}", hw.cpl);
    if (!table.unknown(item, hw)) table.row(item, hw.honoured ? "honoured" : "ignored", hw.outcome);
  }
  for (const SwBreakpointCheck& sw : result.sw_breakpoint) {
    const std::string item = fmt::format("sw breakpoint cpl{}", sw.cpl);
    if (table.unknown(item, sw)) continue;
    std::string detail = "delivery " + sw.delivery + ", first exit " + sw.exit_reason_name;
    if (sw.caught_at_handler) detail += ", caught at the guest's #BP handler";
    if (sw.exit_reason == 17) detail += fmt::format(" (suberror {})", sw.internal_error_suberror);
    if (sw.stops) detail += fmt::format(", RIP int3{:+}", sw.rip_offset);
    if (sw.stops) detail += sw.resumable ? ", resumes" : ", does not resume";
    table.row(item, sw.usable ? "usable" : "unusable", detail);
  }

  table.heading("Guest features");
  for (const DirtyLogCheck& log : result.dirty_log) {
    const std::string item = fmt::format("dirty log cpl{}", log.cpl);
    if (!table.unknown(item, log))
      table.row(item, log.works ? "works" : "broken",
                "wrote pages " + join(log.pages_written) + ", log has " + join(log.pages_reported));
  }
  if (!table.unknown("KVM_SET_CPUID2", result.cpuid)) {
    const CpuidCheck& cpuid = result.cpuid;
    table.row("KVM_SET_CPUID2", cpuid.takes_effect ? "takes effect" : "no effect",
              fmt::format("set \"{}\", seen CPL0 \"{}\" CPL3 \"{}\"; leaf 1 bit hidden at "
                          "CPL0 {}, CPL3 {}",
                          cpuid.signature_set, cpuid.signature_seen_cpl0, cpuid.signature_seen_cpl3,
                          cpuid.feature_hidden_cpl0 ? "yes" : "no",
                          cpuid.feature_hidden_cpl3 ? "yes" : "no"));
  }
  if (!table.unknown("syscall from cpl3", result.syscall))
    table.row("syscall from cpl3", result.syscall.reaches_cpl0 ? "reaches cpl0" : "broken",
              result.syscall.outcome);
  if (!table.unknown("ud2 from cpl3", result.ud2_exception))
    table.row("ud2 from cpl3", result.ud2_exception.reaches_cpl0 ? "reaches cpl0" : "broken",
              fmt::format("vector {}, handler CS {:#x}", result.ud2_exception.vector,
                          result.ud2_exception.handler_cs));

  table.heading("Performance counters");
  const PerfCheck& perf = result.perf;
  if (!table.unknown("perf", perf)) {
    table.row("instructions", perf.instructions_available ? "available" : "unavailable",
              perf.instructions_error);
    table.row("branches", perf.branches_available ? "available" : "unavailable",
              perf.branches_error);
    if (perf.branches_available)
      table.row("guest branches", perf.counts_guest_branches ? "counted" : "missed",
                fmt::format("{} of {}", perf.guest_branches_counted, perf.guest_branches_expected));
    table.row("kvm enable_pmu", perf.enable_pmu.empty() ? "absent" : perf.enable_pmu,
              fmt::format("guest PMU version {}", perf.guest_pmu_version));
  }

  table.heading("Costs");
  if (!table.unknown("PIO exit (cpl0)", result.pio_exit))
    table.row("PIO exit (cpl0)", fmt::format("{:.1f} us", result.pio_exit.round_trip_us),
              fmt::format("{:.0f} exits/s", result.pio_exit.exits_per_second));
  if (!table.unknown("stop cpl3 vCPU", result.stop))
    table.row("stop cpl3 vCPU", fmt::format("{:.0f} us mean", result.stop.mean_us),
              fmt::format("max {:.0f} us over {} stops, registers {}", result.stop.max_us,
                          result.stop.tries,
                          result.stop.registers_consistent ? "consistent" : "INCONSISTENT"));

  const Strategy& strategy = result.strategy;
  table.heading("Strategy");
  table.row("positioning", strategy.positioning, strategy.positioning_rationale);
  table.row("breakpoints cpl0", strategy.breakpoint_search_cpl0,
            strategy.breakpoint_rationale_cpl0);
  table.row("breakpoints cpl3", strategy.breakpoint_search_cpl3,
            strategy.breakpoint_rationale_cpl3);
  table.row("cpl3 debug exceptions", strategy.debug_exceptions_cpl3, "");
  table.row("cpl0 code", strategy.cpl0_execution, "");
  table.row("cpl3 code", strategy.cpl3_execution, "");
  table.row("guest cpuid", strategy.guest_cpuid, "");
  table.row("dirty tracking", strategy.dirty_tracking, "");
  table.row("system calls", strategy.system_calls, "");
  return table.text();
}

}  // namespace vmm::probe
