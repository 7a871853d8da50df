#pragma once
// The CPUID table the vCPU gets. KVM_GET_SUPPORTED_CPUID executes CPUID on
// whichever host core the calling thread runs on, so the fields that name a
// core (initial and x2APIC IDs, AMD's extended APIC, core and node IDs) tell
// the guest where the VMM happened to start: a recording made on core 0 and
// replayed on core 1 gave Linux another boot_cpu_data.initial_apicid
// (found when replay first re-executed a stretch of its CPU set-up, see
// docs/record-replay.md, "Searched positions"). They are set to those of
// CPU 0 of a one-CPU package, as a VMM does for its vCPU 0.
#include <linux/kvm.h>

#include <vector>

namespace vmm {

std::vector<kvm_cpuid_entry2> cpuid_for_vcpu0(std::vector<kvm_cpuid_entry2> host_supported);

}  // namespace vmm
