#pragma once
// Keeps the thread that runs the vCPU on one host CPU, the same in record and
// replay. Why: native CPL3 code reads the CPUID of the host CPU it runs on
// (kvm_pvm runs it without an exit, so it cannot be logged), whose APIC IDs
// differ between host CPUs; a static glibc stores them at start-up (the Linux
// guest's busybox). A stretch replay re-executes instead of installing (a
// kernel-return stop) then diverged when replayed on another host CPU than
// the one it was recorded on, and replayed faithfully on the same one
// (docs/record-replay.md, "Nondeterminism that must not reach the guest").
#include <optional>
#include <string>

namespace vmm {

// The manifest's guest key holding the host CPU the vCPU thread ran on.
inline constexpr const char* kVcpuHostCpuKey = "vcpu_host_cpu";

// Pins the calling thread to the host CPU it is running on now; returns it,
// or nullopt (and leaves the thread as it was) if that fails.
std::optional<int> pin_to_current_host_cpu();

// Pins the calling thread to host CPU `cpu` if this process may run there;
// otherwise returns why not (the thread stays as it was).
std::optional<std::string> pin_to_host_cpu(int cpu);

}  // namespace vmm
