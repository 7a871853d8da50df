#pragma once
// `rr-vmm probe`: what this host's KVM really offers, measured with tiny guests
// (see docs/probe.md). The VMM picks its record/replay strategy from the
// result: how to find an instruction position without a branch counter, which
// breakpoint mechanism works at which privilege level, whether guest CPUID can
// be controlled, and so on. Every item is measured; an item that fails or
// times out is "unknown" with the error text, never a guess.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vmm::probe {

// Bumped whenever a measurement changes meaning, so old cache files are redone.
inline constexpr int kProbeVersion = 2;
// Above this a guest mode counts as running natively (an emulator manages ~1-20M).
inline constexpr double kNativeInstructionsPerSecond = 100e6;

// Common to every measured item: unknown items carry the reason.
struct Measured {
  std::string status = "unknown";  // "ok" | "unknown"
  std::string error;
  double seconds = 0;  // time spent measuring
  bool ok() const { return status == "ok"; }
};

struct HostInfo : Measured {
  std::string kernel_release;  // uname -r
  std::string kernel_version;  // /proc/version
  std::string cpu_vendor;      // vendor_id in /proc/cpuinfo
  std::string cpu_model;       // model name in /proc/cpuinfo
  std::string kvm_backend;     // kvm_intel, kvm_amd, kvm_pvm, ...
  std::string kvm_identity;    // module srcversion or kernel build id, plus module parameters
  int api_version = 0;
  std::map<std::string, int> capabilities;  // KVM_CHECK_EXTENSION value per capability
  std::string enable_pmu;                   // /sys/module/kvm/parameters/enable_pmu, "" if absent
};

struct ModeSpeed : Measured {
  std::string mode;  // real16, protected32, long64_cpl0, long64_cpl3, compat32_cpl3
  int cpl = 0;
  uint64_t instructions = 0;
  double instructions_per_second = 0;
  std::string execution;  // "native" | "emulated"
};

// How a debug exception raised by the guest reaches the VMM:
//  "kvm-exit"        KVM_RUN returns (DEBUG) at the instruction, as on VT-x/AMD-V;
//  "guest-idt"       the exception is delivered to the guest's own IDT handler
//                    (kvm_pvm at CPL3); the VMM can still catch it with a
//                    hardware breakpoint on that handler and unwind the frame;
//  "internal-error"  KVM_EXIT_INTERNAL_ERROR (kvm_pvm's CPL0 emulator on int3);
//  "none"            no exit within the time limit; or "exit <NAME>".
struct SingleStepCheck : Measured {
  int cpl = 0;
  std::string delivery;
  bool one_instruction_per_run = false;  // KVM_RUN itself stops after each instruction
  bool caught_at_handler = false;        // exact when caught at the guest's #DB handler
  uint32_t exit_reason = 0;              // as reported while stepping
  std::string exit_reason_name;
  int steps_checked = 0;
  double steps_per_second = 0;  // of the exact method (direct, else caught at the handler)
};

// What a single step does at the edges an exact stepper must handle
// (docs/analyzer.md, "Single steps"), measured on tiny 64-bit guests.
struct StepEdgesCheck : Measured {
  // A step over an iretq from CPL0 to CPL3 ran on into the user code
  // instead of stopping right after the iretq (kvm_pvm: the step belongs to
  // its CPL0 emulator), and how many user instructions it ran.
  bool iretq_step_runs_user_code = false;
  uint64_t user_instructions_run = 0;
  // The trap flag the host sets for a step, found in the RFLAGS image the
  // CPU stored: the frame of an interrupt delivered at the step's start
  // (CPL0, CPL3), and the value pushf stores at CPL3.
  bool trap_flag_in_event_frame_cpl0 = false;
  bool trap_flag_in_event_frame_cpl3 = false;
  bool trap_flag_in_pushf_cpl3 = false;
  // Steps a 5-iteration `rep stosb` takes (5: one per iteration).
  int rep_steps_cpl0 = 0;
  int rep_steps_cpl3 = 0;
};

struct HwBreakpointCheck : Measured {
  int cpl = 0;
  bool honoured = false;
  std::string outcome;  // e.g. "DEBUG at the breakpoint", "no exit within 100 ms"
};

struct SwBreakpointCheck : Measured {
  int cpl = 0;
  std::string delivery;            // as for SingleStepCheck
  bool caught_at_handler = false;  // stopped via a hardware breakpoint on the guest's #BP handler
  bool stops = false;              // the vCPU stopped at (or right after) the int3
  bool resumable = false;          // restoring the byte and rewinding RIP continues correctly
  bool usable = false;
  uint32_t exit_reason = 0;
  std::string exit_reason_name;
  int64_t rip_offset = 0;  // RIP of the trapping context minus the int3's address
  uint32_t internal_error_suberror = 0;
};

struct DirtyLogCheck : Measured {
  int cpl = 0;
  bool works = false;
  std::vector<int> pages_written;
  std::vector<int> pages_reported;
};

struct CpuidCheck : Measured {
  bool takes_effect = false;  // both edits seen at both CPL0 and CPL3
  std::string signature_set;  // leaf 0x40000000 EBX:ECX:EDX given to KVM_SET_CPUID2
  std::string signature_seen_cpl0;
  std::string signature_seen_cpl3;
  // Leaf 1 ECX bit 31 ("hypervisor present") cleared in the table: hidden?
  bool feature_hidden_cpl0 = false;
  bool feature_hidden_cpl3 = false;
};

struct PerfCheck : Measured {
  bool instructions_available = false;
  std::string instructions_error;
  bool branches_available = false;
  std::string branches_error;
  bool counts_guest_branches = false;  // a host branch counter sees a native guest loop
  uint64_t guest_branches_expected = 0;
  uint64_t guest_branches_counted = 0;
  std::string enable_pmu;
  int guest_pmu_version = 0;  // CPUID.0xA:EAX[7:0] that KVM offers guests
};

struct PioCost : Measured {
  uint64_t exits = 0;
  double round_trip_us = 0;
  double exits_per_second = 0;
};

struct StopCost : Measured {
  int tries = 0;
  double mean_us = 0;
  double max_us = 0;
  bool registers_consistent = false;
};

struct SyscallCheck : Measured {
  bool reaches_cpl0 = false;
  uint32_t handler_cs = 0;  // CS read by the LSTAR handler
  std::string outcome;
};

struct ExceptionCheck : Measured {
  bool reaches_cpl0 = false;  // ud2 at CPL3 is delivered to the CPL0 #UD handler
  uint32_t vector = 0;
  uint32_t handler_cs = 0;
};

// What the VMM should do, derived only from the measurements above.
struct Strategy {
  std::string positioning;  // "branch-counter" | "state-snapshot"
  std::string positioning_rationale;
  std::string breakpoint_search_cpl0;  // "hw" | "sw" | "singlestep" | "none"
  std::string breakpoint_search_cpl3;
  std::string breakpoint_rationale_cpl0;
  std::string breakpoint_rationale_cpl3;
  // How the VMM receives debug exceptions raised at CPL3: "exit-to-vmm",
  // "catch-at-guest-handler" or "unusable".
  std::string debug_exceptions_cpl3;
  std::string cpl0_execution;  // "native" | "emulated" | "unknown"
  std::string cpl3_execution;
  std::string guest_cpuid;     // "kvm-set-cpuid2" | "guest-command-line" | "unknown"
  std::string dirty_tracking;  // "dirty-log" | "compare-memory"
  std::string system_calls;    // "syscall" | "exception"
};

struct ProbeResult {
  int probe_version = kProbeVersion;
  std::string cache_key;
  std::string measured_at;  // UTC, ISO 8601
  double total_seconds = 0;
  bool from_cache = false;
  HostInfo host;
  std::vector<ModeSpeed> execution;
  std::vector<SingleStepCheck> single_step;
  StepEdgesCheck step_edges;
  std::vector<HwBreakpointCheck> hw_breakpoint;
  std::vector<SwBreakpointCheck> sw_breakpoint;
  std::vector<DirtyLogCheck> dirty_log;
  CpuidCheck cpuid;
  PerfCheck perf;
  PioCost pio_exit;
  StopCost stop;
  SyscallCheck syscall;
  ExceptionCheck ud2_exception;
  Strategy strategy;

  // Lookups by mode name / CPL; nullptr when absent.
  const ModeSpeed* speed(std::string_view mode) const;
  const SingleStepCheck* single_step_at(int cpl) const;
  const HwBreakpointCheck* hw_breakpoint_at(int cpl) const;
  const SwBreakpointCheck* sw_breakpoint_at(int cpl) const;
  const DirtyLogCheck* dirty_log_at(int cpl) const;
};

struct ProbeOptions {
  bool refresh = false;             // measure even if a cached result matches
  std::filesystem::path cache_dir;  // empty: default_cache_dir()
  std::chrono::milliseconds item_timeout{3000};
  std::chrono::milliseconds total_budget{10000};  // items past it are "unknown"
};

// Measures everything now (no cache).
ProbeResult run_probe(const ProbeOptions& options = {});
// The VMM's entry point: the cached result for this host if its key matches,
// else a fresh probe, which is then cached.
ProbeResult load_or_run_probe(const ProbeOptions& options = {});

HostInfo collect_host_info();
Strategy derive_strategy(const ProbeResult& result);
// $XDG_CACHE_HOME/rrkvm, else ~/.cache/rrkvm.
std::filesystem::path default_cache_dir();
// Stable key for kernel release + KVM module identity + CPU model.
std::string cache_key(const HostInfo& host);
std::filesystem::path cache_file(const std::filesystem::path& dir, const std::string& key);

// Human-readable table.
std::string format_table(const ProbeResult& result);

}  // namespace vmm::probe
