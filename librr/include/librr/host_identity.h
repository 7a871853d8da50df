#pragma once
// Identity of the host CPU a recording was made on. Replay of a KVM guest is
// only faithful on a CPU that reports the same CPUID to the guest, so the
// manifest records it and a replayer compares it with the current host.
#include <cstdint>
#include <string>
#include <vector>

namespace librr {

struct HostIdentity {
  std::string vendor;  // CPUID leaf 0, e.g. "GenuineIntel", "AuthenticAMD"
  // Display family/model (base plus extended fields, as the SDMs define them).
  uint32_t family = 0;
  uint32_t model = 0;
  uint32_t stepping = 0;
  std::string model_name;  // CPUID brand string (leaves 0x80000002..4)
  // BLAKE2b-256 (hex) of the sorted feature flag names of /proc/cpuinfo, or
  // of the raw CPUID feature words when /proc/cpuinfo has no flags line.
  std::string feature_flags_digest;
  // Fields a newer librr wrote that this one does not know (a JSON object).
  std::string extra_json = "{}";

  bool same_cpu(const HostIdentity& other) const {
    return vendor == other.vendor && family == other.family && model == other.model &&
           stepping == other.stepping && model_name == other.model_name &&
           feature_flags_digest == other.feature_flags_digest;
  }
};

// Reads the identity of the CPU this process runs on (CPUID and /proc/cpuinfo).
HostIdentity current_host_identity();

// One line per field that differs ("vendor: GenuineIntel (recorded) vs
// AuthenticAMD (this host)"); empty when the CPUs match.
std::vector<std::string> describe_host_differences(const HostIdentity& recorded,
                                                   const HostIdentity& current);

}  // namespace librr
