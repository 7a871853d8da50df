#include "kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "librr/error.h"

namespace vmm::kvm {
namespace {

// ioctl that retries on EINTR (none of the ioctls routed here should be cut
// short by our kick signal, only KVM_RUN) and throws with the ioctl's name.
int checked_ioctl(int fd, unsigned long request, const char* name, void* arg = nullptr) {
  int result;
  do {
    result = ::ioctl(fd, request, arg);
  } while (result < 0 && errno == EINTR);
  if (result < 0) librr::throw_errno(name);
  return result;
}

int checked_ioctl_value(int fd, unsigned long request, const char* name, unsigned long arg) {
  int result;
  do {
    result = ::ioctl(fd, request, arg);
  } while (result < 0 && errno == EINTR);
  if (result < 0) librr::throw_errno(name);
  return result;
}

// Variable-length KVM structs (kvm_msrs, kvm_cpuid2, kvm_signal_mask) end in
// a flexible array; allocate header + n entries with correct alignment.
template <class Header, class Entry>
struct FlexBuffer {
  explicit FlexBuffer(size_t entries)
      : storage(
            (sizeof(Header) + entries * sizeof(Entry) + sizeof(uint64_t) - 1) / sizeof(uint64_t),
            0) {}
  Header* header() { return reinterpret_cast<Header*>(storage.data()); }
  std::vector<uint64_t> storage;
};

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Mapping::Mapping(Mapping&& other) noexcept : addr_(other.addr_), size_(other.size_) {
  other.addr_ = nullptr;
  other.size_ = 0;
}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = other.addr_;
    size_ = other.size_;
    other.addr_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

Mapping::~Mapping() { reset(); }

void Mapping::reset() {
  if (addr_) ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

// ---- System ----

System::System(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) librr::throw_errno(std::string("open ") + path);
  fd_ = Fd(fd);
  int version = api_version();
  if (version != KVM_API_VERSION)
    throw librr::SystemError(std::string(path) + ": KVM API version " + std::to_string(version) +
                             ", expected " + std::to_string(KVM_API_VERSION));
}

int System::api_version() const {
  return checked_ioctl_value(fd_.get(), KVM_GET_API_VERSION, "KVM_GET_API_VERSION", 0);
}

int System::check_extension(long capability) const {
  return checked_ioctl_value(fd_.get(), KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION",
                             static_cast<unsigned long>(capability));
}

size_t System::vcpu_mmap_size() const {
  return static_cast<size_t>(
      checked_ioctl_value(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", 0));
}

std::vector<kvm_cpuid_entry2> System::supported_cpuid() const {
  for (size_t capacity = 64; capacity <= 4096; capacity *= 2) {
    FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2> buffer(capacity);
    buffer.header()->nent = static_cast<uint32_t>(capacity);
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, buffer.header()) == 0) {
      auto* entries = buffer.header()->entries;
      return {entries, entries + buffer.header()->nent};
    }
    if (errno != E2BIG) librr::throw_errno("KVM_GET_SUPPORTED_CPUID");
  }
  throw librr::SystemError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

std::vector<uint32_t> System::msr_index_list() const {
  for (size_t capacity = 256; capacity <= 65536; capacity *= 4) {
    FlexBuffer<kvm_msr_list, uint32_t> buffer(capacity);
    buffer.header()->nmsrs = static_cast<uint32_t>(capacity);
    if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, buffer.header()) == 0) {
      auto* indices = buffer.header()->indices;
      return {indices, indices + buffer.header()->nmsrs};
    }
    if (errno != E2BIG) librr::throw_errno("KVM_GET_MSR_INDEX_LIST");
  }
  throw librr::SystemError("KVM_GET_MSR_INDEX_LIST: more than 65536 entries");
}

Vm System::create_vm() const {
  int fd = checked_ioctl_value(fd_.get(), KVM_CREATE_VM, "KVM_CREATE_VM", 0);
  return Vm(Fd(fd), vcpu_mmap_size());
}

// ---- Vm ----

void Vm::set_user_memory_region(uint32_t slot, uint64_t guest_phys_addr, uint64_t size,
                                void* host_addr, uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_phys_addr;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host_addr);
  checked_ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &region);
}

std::vector<uint64_t> Vm::get_dirty_log(uint32_t slot, uint64_t slot_size) {
  const uint64_t pages = (slot_size + 4095) / 4096;
  std::vector<uint64_t> bitmap((pages + 63) / 64, 0);
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap.data();
  checked_ioctl(fd_.get(), KVM_GET_DIRTY_LOG, "KVM_GET_DIRTY_LOG", &log);
  return bitmap;
}

int Vm::check_extension(long capability) const {
  return checked_ioctl_value(fd_.get(), KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION (vm)",
                             static_cast<unsigned long>(capability));
}

void Vm::set_tss_addr(uint64_t addr) {
  checked_ioctl_value(fd_.get(), KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", addr);
}

void Vm::set_identity_map_addr(uint64_t addr) {
  checked_ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &addr);
}

void Vm::enable_cap(const kvm_enable_cap& cap) {
  kvm_enable_cap copy = cap;
  checked_ioctl(fd_.get(), KVM_ENABLE_CAP, "KVM_ENABLE_CAP", &copy);
}

Vcpu Vm::create_vcpu(unsigned id) {
  Fd fd(checked_ioctl_value(fd_.get(), KVM_CREATE_VCPU, "KVM_CREATE_VCPU", id));
  void* area = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (area == MAP_FAILED) librr::throw_errno("mmap kvm_run");
  return Vcpu(std::move(fd), Mapping(area, vcpu_mmap_size_));
}

// ---- Vcpu ----

int Vcpu::run() {
  int result = ::ioctl(fd_.get(), KVM_RUN, 0);
  return result < 0 ? -errno : 0;
}

#define VCPU_GET(type, fn, request)                      \
  type Vcpu::fn() const {                                \
    type value{};                                        \
    checked_ioctl(fd_.get(), request, #request, &value); \
    return value;                                        \
  }
#define VCPU_SET(type, fn, request)                     \
  void Vcpu::fn(const type& value) {                    \
    type copy = value;                                  \
    checked_ioctl(fd_.get(), request, #request, &copy); \
  }

VCPU_GET(kvm_regs, get_regs, KVM_GET_REGS)
VCPU_SET(kvm_regs, set_regs, KVM_SET_REGS)
VCPU_GET(kvm_sregs, get_sregs, KVM_GET_SREGS)
VCPU_SET(kvm_sregs, set_sregs, KVM_SET_SREGS)
VCPU_GET(kvm_fpu, get_fpu, KVM_GET_FPU)
VCPU_SET(kvm_fpu, set_fpu, KVM_SET_FPU)
VCPU_GET(kvm_vcpu_events, get_vcpu_events, KVM_GET_VCPU_EVENTS)
VCPU_SET(kvm_vcpu_events, set_vcpu_events, KVM_SET_VCPU_EVENTS)
VCPU_GET(kvm_debugregs, get_debugregs, KVM_GET_DEBUGREGS)
VCPU_SET(kvm_debugregs, set_debugregs, KVM_SET_DEBUGREGS)
VCPU_GET(kvm_xcrs, get_xcrs, KVM_GET_XCRS)
VCPU_SET(kvm_xcrs, set_xcrs, KVM_SET_XCRS)
VCPU_SET(kvm_guest_debug, set_guest_debug, KVM_SET_GUEST_DEBUG)
#undef VCPU_GET
#undef VCPU_SET

std::vector<kvm_msr_entry> Vcpu::get_msrs(std::span<const uint32_t> indices) const {
  FlexBuffer<kvm_msrs, kvm_msr_entry> buffer(indices.size());
  buffer.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buffer.header()->entries[i].index = indices[i];
  int read = checked_ioctl(fd_.get(), KVM_GET_MSRS, "KVM_GET_MSRS", buffer.header());
  if (static_cast<size_t>(read) != indices.size())
    throw librr::SystemError("KVM_GET_MSRS: could not read MSR " +
                             std::to_string(indices[static_cast<size_t>(read)]));
  auto* entries = buffer.header()->entries;
  return {entries, entries + indices.size()};
}

void Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
  FlexBuffer<kvm_msrs, kvm_msr_entry> buffer(entries.size());
  buffer.header()->nmsrs = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.header()->entries[i] = entries[i];
  int written = checked_ioctl(fd_.get(), KVM_SET_MSRS, "KVM_SET_MSRS", buffer.header());
  if (static_cast<size_t>(written) != entries.size())
    throw librr::SystemError("KVM_SET_MSRS: could not write MSR " +
                             std::to_string(entries[static_cast<size_t>(written)].index));
}

void Vcpu::interrupt(uint32_t vector) {
  kvm_interrupt request{};
  request.irq = vector;
  checked_ioctl(fd_.get(), KVM_INTERRUPT, "KVM_INTERRUPT", &request);
}

void Vcpu::set_cpuid2(std::span<const kvm_cpuid_entry2> entries) {
  FlexBuffer<kvm_cpuid2, kvm_cpuid_entry2> buffer(entries.size());
  buffer.header()->nent = static_cast<uint32_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) buffer.header()->entries[i] = entries[i];
  checked_ioctl(fd_.get(), KVM_SET_CPUID2, "KVM_SET_CPUID2", buffer.header());
}

void Vcpu::set_signal_mask(const sigset_t* mask) {
  // The kernel's sigset is 8 bytes on x86_64, not glibc's 128-byte sigset_t.
  constexpr uint32_t kKernelSigsetSize = 8;
  FlexBuffer<kvm_signal_mask, uint8_t> buffer(kKernelSigsetSize);
  if (mask == nullptr) {
    checked_ioctl(fd_.get(), KVM_SET_SIGNAL_MASK, "KVM_SET_SIGNAL_MASK", nullptr);
    return;
  }
  buffer.header()->len = kKernelSigsetSize;
  std::memcpy(buffer.header()->sigset, mask, kKernelSigsetSize);
  checked_ioctl(fd_.get(), KVM_SET_SIGNAL_MASK, "KVM_SET_SIGNAL_MASK", buffer.header());
}

// ---- GuestRam ----

GuestRam::GuestRam(uint64_t size) {
  if (size == 0 || size % 4096 != 0)
    throw librr::Error("guest RAM size " + std::to_string(size) +
                       " is not a positive multiple of 4096");
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED)
    librr::throw_errno("mmap guest RAM of " + std::to_string(size >> 20) + " MiB");
  mapping_ = Mapping(addr, size);
}

}  // namespace vmm::kvm
