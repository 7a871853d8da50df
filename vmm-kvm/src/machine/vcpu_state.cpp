#include "machine/vcpu_state.h"

#include <vector>

#include "librr/error.h"

namespace vmm {
namespace {
constexpr uint32_t kFormatVersion = 1;

constexpr uint32_t kTimeStampCounterMsr = 0x00000010;

constexpr uint32_t kSavedMsrs[] = {
    kTimeStampCounterMsr,  // IA32_TIME_STAMP_COUNTER
    0xc0000080,            // EFER
    0xc0000081,            // STAR
    0xc0000082,            // LSTAR
    0xc0000083,            // CSTAR
    0xc0000084,            // SFMASK
    0xc0000100,            // FS_BASE
    0xc0000101,            // GS_BASE
    0xc0000102,            // KERNEL_GS_BASE
    0x00000174,            // SYSENTER_CS
    0x00000175,            // SYSENTER_ESP
    0x00000176,            // SYSENTER_EIP
    0x00000277,            // PAT
};

// Each struct is stored with its size so a layout change in linux/kvm.h is
// detected instead of silently misread.
template <class T>
void put(librr::ByteWriter& out, const T& value) {
  out.u32(static_cast<uint32_t>(sizeof(T)));
  out.pod(value);
}

template <class T>
T get(librr::ByteReader& in, const char* what) {
  const size_t at = in.position();
  const uint32_t size = in.u32();
  if (size != sizeof(T))
    throw librr::FormatError(std::string("vcpu state: ") + what + " has " + std::to_string(size) +
                                 " bytes, expected " + std::to_string(sizeof(T)),
                             static_cast<int64_t>(at));
  return in.pod<T>();
}
}  // namespace

std::span<const uint32_t> saved_msr_indices() { return kSavedMsrs; }

VcpuState VcpuState::capture(const kvm::Vcpu& vcpu) {
  VcpuState state;
  state.regs = vcpu.get_regs();
  state.sregs = vcpu.get_sregs();
  state.fpu = vcpu.get_fpu();
  state.msrs = vcpu.get_msrs(kSavedMsrs);
  state.events = vcpu.get_vcpu_events();
  state.debugregs = vcpu.get_debugregs();
  state.xcrs = vcpu.get_xcrs();
  return state;
}

void VcpuState::restore(kvm::Vcpu& vcpu) const {
  vcpu.set_sregs(sregs);
  vcpu.set_msrs(msrs);
  vcpu.set_regs(regs);
  vcpu.set_fpu(fpu);
  vcpu.set_xcrs(xcrs);
  vcpu.set_debugregs(debugregs);
  // KVM_GET_VCPU_EVENTS already set the VALID_* flags for what it filled in.
  vcpu.set_vcpu_events(events);
}

void VcpuState::drop_time_stamp_counter() {
  std::erase_if(msrs, [](const kvm_msr_entry& msr) { return msr.index == kTimeStampCounterMsr; });
}

void VcpuState::save(librr::ByteWriter& out) const {
  out.u32(kFormatVersion);
  put(out, regs);
  put(out, sregs);
  put(out, fpu);
  out.u32(static_cast<uint32_t>(msrs.size()));
  for (const kvm_msr_entry& msr : msrs) {
    out.u32(msr.index);
    out.u64(msr.data);
  }
  put(out, events);
  put(out, debugregs);
  put(out, xcrs);
}

VcpuState VcpuState::load(librr::ByteReader& in) {
  const size_t at = in.position();
  const uint32_t version = in.u32();
  if (version != kFormatVersion)
    throw librr::FormatError("vcpu state: version " + std::to_string(version) + ", expected " +
                                 std::to_string(kFormatVersion),
                             static_cast<int64_t>(at));
  VcpuState state;
  state.regs = get<kvm_regs>(in, "kvm_regs");
  state.sregs = get<kvm_sregs>(in, "kvm_sregs");
  state.fpu = get<kvm_fpu>(in, "kvm_fpu");
  const uint32_t msr_count = in.u32();
  if (msr_count > 1024)
    throw librr::FormatError("vcpu state: " + std::to_string(msr_count) + " MSRs",
                             static_cast<int64_t>(in.position()));
  state.msrs.resize(msr_count);
  for (kvm_msr_entry& msr : state.msrs) {
    msr = {};
    msr.index = in.u32();
    msr.data = in.u64();
  }
  state.events = get<kvm_vcpu_events>(in, "kvm_vcpu_events");
  state.debugregs = get<kvm_debugregs>(in, "kvm_debugregs");
  state.xcrs = get<kvm_xcrs>(in, "kvm_xcrs");
  return state;
}

}  // namespace vmm
