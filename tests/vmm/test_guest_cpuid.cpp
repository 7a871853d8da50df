// The vCPU's CPUID table must not depend on the host core the VMM read it
// on: KVM_GET_SUPPORTED_CPUID runs CPUID where the calling thread is, and a
// recording replayed on another core then showed Linux another APIC ID.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "kvm/kvm.h"
#include "machine/guest_cpuid.h"

namespace {

bool kvm_usable() { return access("/dev/kvm", R_OK | W_OK) == 0; }

// KVM_GET_SUPPORTED_CPUID read by a thread pinned to `cpu`.
std::vector<kvm_cpuid_entry2> supported_cpuid_on(int cpu) {
  std::vector<kvm_cpuid_entry2> entries;
  std::thread reader([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) return;
    entries = vmm::kvm::System().supported_cpuid();
  });
  reader.join();
  return entries;
}

bool same_table(const std::vector<kvm_cpuid_entry2>& a, const std::vector<kvm_cpuid_entry2>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(kvm_cpuid_entry2)) == 0;
}

}  // namespace

TEST(GuestCpuid, TableIsTheSameOnEveryHostCore) {
  if (!kvm_usable()) GTEST_SKIP() << "/dev/kvm is not usable here";
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  if (cpus.size() < 2) GTEST_SKIP() << "one host CPU: nothing to compare";
  const std::vector<kvm_cpuid_entry2> first = supported_cpuid_on(cpus.front());
  ASSERT_FALSE(first.empty());
  bool raw_tables_differ = false;
  for (const int cpu : cpus) {
    const std::vector<kvm_cpuid_entry2> here = supported_cpuid_on(cpu);
    raw_tables_differ |= !same_table(first, here);
    EXPECT_TRUE(same_table(vmm::cpuid_for_vcpu0(first), vmm::cpuid_for_vcpu0(here)))
        << "CPU " << cpu << " gives the vCPU another CPUID table than CPU " << cpus.front();
  }
  // What makes this test worth having: the host's tables name the core.
  if (!raw_tables_differ)
    std::printf("note: KVM_GET_SUPPORTED_CPUID was identical on all %zu cores of this host\n",
                cpus.size());
}
