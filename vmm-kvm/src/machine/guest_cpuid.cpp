#include "machine/guest_cpuid.h"

namespace vmm {

std::vector<kvm_cpuid_entry2> cpuid_for_vcpu0(std::vector<kvm_cpuid_entry2> entries) {
  for (kvm_cpuid_entry2& entry : entries) {
    switch (entry.function) {
      case 0x1:
        entry.ebx &= 0x00ffffffu;  // bits 31-24: initial APIC ID
        break;
      case 0xb:  // extended topology (Intel, and AMD since Zen 2)
      case 0x1f:
        entry.edx = 0;  // x2APIC ID of this logical processor
        break;
      case 0x8000001e:        // AMD: extended APIC ID, core and node identifiers
        entry.eax = 0;        // extended APIC ID
        entry.ebx &= ~0xffu;  // bits 7-0: core ID
        entry.ecx &= ~0xffu;  // bits 7-0: node ID
        break;
      default:
        break;
    }
  }
  return entries;
}

}  // namespace vmm
