#include "probe/kvm_flex_ioctls.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "librr/error.h"

namespace vmm::probe {
namespace {

// The fixed part of struct kvm_cpuid2 / kvm_msrs as the kernel lays it out;
// the entries follow at offset 8.
struct FlexHeader {
  uint32_t count;
  uint32_t padding;
};
static_assert(sizeof(FlexHeader) == 8);

constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, FlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, FlexHeader);

// 8-byte aligned storage for a header followed by `count` entries.
template <class Entry>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t count)
      : storage_((sizeof(FlexHeader) + count * sizeof(Entry) + 7) / 8, 0) {
    header()->count = static_cast<uint32_t>(count);
  }
  FlexHeader* header() { return reinterpret_cast<FlexHeader*>(storage_.data()); }
  void* data() { return storage_.data(); }
  Entry entry(size_t i) const {
    Entry value;
    std::memcpy(&value, bytes() + sizeof(FlexHeader) + i * sizeof(Entry), sizeof(Entry));
    return value;
  }
  void set_entry(size_t i, const Entry& value) {
    std::memcpy(bytes() + sizeof(FlexHeader) + i * sizeof(Entry), &value, sizeof(Entry));
  }

 private:
  uint8_t* bytes() const {
    return reinterpret_cast<uint8_t*>(const_cast<uint64_t*>(storage_.data()));
  }
  std::vector<uint64_t> storage_;
};

}  // namespace

std::vector<kvm_cpuid_entry2> supported_cpuid(int kvm_fd) {
  for (size_t capacity = 64; capacity <= 4096; capacity *= 2) {
    FlexBuffer<kvm_cpuid_entry2> buffer(capacity);
    if (::ioctl(kvm_fd, kGetSupportedCpuid, buffer.data()) == 0) {
      std::vector<kvm_cpuid_entry2> entries(buffer.header()->count);
      for (size_t i = 0; i < entries.size(); ++i) entries[i] = buffer.entry(i);
      return entries;
    }
    if (errno != E2BIG) librr::throw_errno("KVM_GET_SUPPORTED_CPUID");
  }
  throw librr::SystemError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

void set_cpuid2(int vcpu_fd, std::span<const kvm_cpuid_entry2> entries) {
  FlexBuffer<kvm_cpuid_entry2> buffer(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.set_entry(i, entries[i]);
  if (::ioctl(vcpu_fd, kSetCpuid2, buffer.data()) != 0) librr::throw_errno("KVM_SET_CPUID2");
}

void set_msrs(int vcpu_fd, std::span<const kvm_msr_entry> entries) {
  FlexBuffer<kvm_msr_entry> buffer(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.set_entry(i, entries[i]);
  const int written = ::ioctl(vcpu_fd, kSetMsrs, buffer.data());
  if (written < 0) librr::throw_errno("KVM_SET_MSRS");
  if (static_cast<size_t>(written) != entries.size())
    throw librr::SystemError("KVM_SET_MSRS: KVM refused MSR " +
                             std::to_string(entries[static_cast<size_t>(written)].index));
}

}  // namespace vmm::probe
