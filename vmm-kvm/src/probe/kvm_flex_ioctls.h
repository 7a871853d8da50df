#pragma once
// KVM ioctls whose argument ends in a flexible array, done with an explicit
// layout. Linux 6.1's uapi headers (Debian 12) declare those arrays with
// __DECLARE_FLEX_ARRAY, which in C++ adds a 1-byte empty struct: sizeof
// (kvm_cpuid2) is 12 instead of 8, `entries` sits at offset 12 (kvm_msrs: 16
// instead of 8), and the size encoded in the ioctl numbers is wrong, so the
// kernel answers EINVAL. kvm/kvm.h's System::supported_cpuid,
// Vcpu::set_cpuid2 and Vcpu::get_msrs/set_msrs are affected; the probe uses
// these instead.
#include <linux/kvm.h>

#include <span>
#include <vector>

namespace vmm::probe {

std::vector<kvm_cpuid_entry2> supported_cpuid(int kvm_fd);
void set_cpuid2(int vcpu_fd, std::span<const kvm_cpuid_entry2> entries);
void set_msrs(int vcpu_fd, std::span<const kvm_msr_entry> entries);

}  // namespace vmm::probe
