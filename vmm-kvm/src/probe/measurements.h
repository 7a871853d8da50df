#pragma once
// The individual measurements. Each runs inside a probe child process (see
// isolated_item.h), builds its own throw-away guest, and throws on failure;
// the caller turns a throw or a timeout into an "unknown" item.
#include "probe/probe.h"
#include "probe/probe_guest.h"

namespace vmm::probe {

// measure_execution.cpp
ModeSpeed measure_speed(GuestMode mode);
PioCost measure_pio_cost();
StopCost measure_stop_cost();

// measure_debug.cpp
SingleStepCheck measure_single_step(int cpl);
HwBreakpointCheck measure_hw_breakpoint(int cpl);
SwBreakpointCheck measure_sw_breakpoint(int cpl);

// measure_step_edges.cpp
StepEdgesCheck measure_step_edges();

// measure_guest_features.cpp
DirtyLogCheck measure_dirty_log(int cpl);
CpuidCheck measure_cpuid();
SyscallCheck measure_syscall();
ExceptionCheck measure_ud2_exception();

// measure_perf.cpp
PerfCheck measure_perf();

// The 64-bit mode for a CPL (the VMM's guests run 64-bit kernels and users).
inline GuestMode long_mode_for(int cpl) {
  return cpl == 3 ? GuestMode::long64_cpl3 : GuestMode::long64_cpl0;
}

}  // namespace vmm::probe
