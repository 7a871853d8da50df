#pragma once
// JSON form of the probe result (the cache file and `rr-vmm probe --json`).
// Field names are the struct members; unknown items keep "status"/"error".
#include <nlohmann/json.hpp>

#include "probe/probe.h"

namespace vmm::probe {

#define RR_PROBE_MEASURED status, error, seconds
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HostInfo, RR_PROBE_MEASURED, kernel_release,
                                                kernel_version, cpu_vendor, cpu_model, kvm_backend,
                                                kvm_identity, api_version, capabilities, enable_pmu)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModeSpeed, RR_PROBE_MEASURED, mode, cpl,
                                                instructions, instructions_per_second, execution)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SingleStepCheck, RR_PROBE_MEASURED, cpl, delivery,
                                                caught_at_handler, one_instruction_per_run,
                                                exit_reason, exit_reason_name, steps_checked,
                                                steps_per_second)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StepEdgesCheck, RR_PROBE_MEASURED,
                                                iretq_step_runs_user_code, user_instructions_run,
                                                trap_flag_in_event_frame_cpl0,
                                                trap_flag_in_event_frame_cpl3,
                                                trap_flag_in_pushf_cpl3, rep_steps_cpl0,
                                                rep_steps_cpl3)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HwBreakpointCheck, RR_PROBE_MEASURED, cpl, honoured,
                                                outcome)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SwBreakpointCheck, RR_PROBE_MEASURED, cpl, delivery,
                                                caught_at_handler, stops, resumable, usable,
                                                exit_reason, exit_reason_name, rip_offset,
                                                internal_error_suberror)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DirtyLogCheck, RR_PROBE_MEASURED, cpl, works,
                                                pages_written, pages_reported)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CpuidCheck, RR_PROBE_MEASURED, takes_effect,
                                                signature_set, signature_seen_cpl0,
                                                signature_seen_cpl3, feature_hidden_cpl0,
                                                feature_hidden_cpl3)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PerfCheck, RR_PROBE_MEASURED,
                                                instructions_available, instructions_error,
                                                branches_available, branches_error,
                                                counts_guest_branches, guest_branches_expected,
                                                guest_branches_counted, enable_pmu,
                                                guest_pmu_version)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PioCost, RR_PROBE_MEASURED, exits, round_trip_us,
                                                exits_per_second)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(StopCost, RR_PROBE_MEASURED, tries, mean_us, max_us,
                                                registers_consistent)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SyscallCheck, RR_PROBE_MEASURED, reaches_cpl0,
                                                handler_cs, outcome)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ExceptionCheck, RR_PROBE_MEASURED, reaches_cpl0,
                                                vector, handler_cs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Strategy, positioning, positioning_rationale,
                                                breakpoint_search_cpl0, breakpoint_search_cpl3,
                                                breakpoint_rationale_cpl0,
                                                breakpoint_rationale_cpl3, debug_exceptions_cpl3,
                                                cpl0_execution, cpl3_execution, guest_cpuid,
                                                dirty_tracking, system_calls)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProbeResult, probe_version, cache_key, measured_at,
                                                total_seconds, from_cache, host, execution,
                                                single_step, step_edges, hw_breakpoint,
                                                sw_breakpoint, dirty_log, cpuid, perf, pio_exit,
                                                stop, syscall, ud2_exception, strategy)
#undef RR_PROBE_MEASURED

}  // namespace vmm::probe
