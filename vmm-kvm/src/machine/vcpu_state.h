#pragma once
// The complete architectural state of the vCPU as one value: what a snapshot
// stores and what record/replay compares. Encoded with librr's ByteWriter in
// a versioned, size-checked layout.
#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "kvm/kvm.h"
#include "librr/bytes.h"

namespace vmm {

// 64-bit mode: long mode active (EFER.LMA) and a 64-bit code segment (CS.L).
inline bool in_64_bit_mode(const kvm_sregs& sregs) {
  constexpr uint64_t kEferLongModeActive = 1ull << 10;
  return (sregs.efer & kEferLongModeActive) && sregs.cs.l;
}

// 64-bit kernel code (CPL0): where searched stops may lie.
inline bool in_64_bit_kernel_mode(const kvm_sregs& sregs) {
  return (sregs.cs.selector & 3) == 0 && in_64_bit_mode(sregs);
}

// MSRs saved with the vCPU (the set the host notes list as readable here).
std::span<const uint32_t> saved_msr_indices();

struct VcpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  std::vector<kvm_msr_entry> msrs;
  kvm_vcpu_events events{};
  kvm_debugregs debugregs{};
  kvm_xcrs xcrs{};

  static VcpuState capture(const kvm::Vcpu& vcpu);
  // Writes everything back; sregs before regs and MSRs so that mode-dependent
  // state (EFER, CR0) is in place first.
  void restore(kvm::Vcpu& vcpu) const;

  // Leaves the time-stamp counter out of `msrs`, so restore() does not touch
  // it. For asynchronous positions: the TSC is host time (guests that replay
  // never read it, docs/record-replay.md), it keeps running at host speed
  // after a restore anyway, and its ~5 changing bytes were an eighth of each
  // position's logged vCPU state.
  void drop_time_stamp_counter();

  void save(librr::ByteWriter& out) const;
  // Throws librr::FormatError on a wrong version, sizes or truncation.
  static VcpuState load(librr::ByteReader& in);
};

}  // namespace vmm
