#include "kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
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

// Variable-length KVM structs (kvm_msrs, kvm_cpuid2, kvm_msr_list,
// kvm_signal_mask) end in __DECLARE_FLEX_ARRAY, which C++ compiles with a
// 1-byte empty struct in front of the array: sizeof and the entries' offset
// differ from the kernel's C layout, and so do the ioctl numbers computed
// from sizeof. So these are built by hand: a C-layout header, then entries
// at the offset the kernel expects, with ioctl numbers from those sizes.
struct CountAndPadHeader {  // kvm_cpuid2, kvm_msrs: __u32 count, __u32 pad
  uint32_t count;
  uint32_t padding;
};
struct CountHeader {  // kvm_msr_list, kvm_signal_mask: __u32 count
  uint32_t count;
};
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, CountHeader);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CountAndPadHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, CountAndPadHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, CountAndPadHeader);
constexpr unsigned long kSetSignalMask = _IOW(KVMIO, 0x8b, CountHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CountAndPadHeader);

template <class Header, class Entry>
class FlexBuffer {
 public:
  explicit FlexBuffer(size_t entries)
      : storage_(
            (sizeof(Header) + entries * sizeof(Entry) + sizeof(uint64_t) - 1) / sizeof(uint64_t),
            0) {
    header().count = static_cast<uint32_t>(entries);
  }
  Header& header() { return *reinterpret_cast<Header*>(storage_.data()); }
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.data()) + sizeof(Header));
  }
  void* get() { return storage_.data(); }

 private:
  std::vector<uint64_t> storage_;
};

// KVM list ioctls answer E2BIG until the buffer is large enough: grow it
// (from `first` up to `limit` entries) and return the entries KVM filled in.
template <class Header, class Entry>
std::vector<Entry> read_growing_list(int fd, unsigned long request, const char* name, size_t first,
                                     size_t limit) {
  for (size_t capacity = first; capacity <= limit; capacity *= 2) {
    FlexBuffer<Header, Entry> buffer(capacity);
    if (::ioctl(fd, request, buffer.get()) == 0)
      return {buffer.entries(), buffer.entries() + buffer.header().count};
    if (errno != E2BIG) librr::throw_errno(name);
  }
  throw librr::SystemError(std::string(name) + ": more than " + std::to_string(limit) + " entries");
}

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
  return read_growing_list<CountAndPadHeader, kvm_cpuid_entry2>(
      fd_.get(), kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID", 64, 4096);
}

std::vector<uint32_t> System::msr_index_list() const {
  return read_growing_list<CountHeader, uint32_t>(fd_.get(), kGetMsrIndexList,
                                                  "KVM_GET_MSR_INDEX_LIST", 256, 65536);
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
  synced_now_ = false;
  interrupt_since_run_ = false;
  const auto started = std::chrono::steady_clock::now();
  int result = ::ioctl(fd_.get(), KVM_RUN, 0);
  const int error = result < 0 ? errno : 0;
  run_ns_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count());
  ++run_calls_;
  // KVM stores the synced fields on every return from its run loop, a
  // signal's or immediate_exit's included.
  synced_now_ = synced_fields_ != 0 && (error == 0 || error == EINTR);
  return -error;
}

void Vcpu::enable_sync_regs(uint64_t supported) {
  synced_fields_ = supported & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS);
  run_state()->kvm_valid_regs = synced_fields_;
  run_state()->kvm_dirty_regs = 0;  // the ioctls set registers, never the run area
  synced_now_ = false;
}

kvm_regs Vcpu::get_regs() const {
  if (synced_now_ && (synced_fields_ & KVM_SYNC_X86_REGS)) return run_state()->s.regs.regs;
  kvm_regs value{};
  checked_ioctl(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS", &value);
  return value;
}

// Not the synced copy while its interrupt bitmap is set: kvm_pvm was seen
// to store an interrupt injected before an immediate exit there that
// KVM_GET_SREGS no longer reports. The events' copy is not trusted then
// either (the same interrupt is in them).
bool Vcpu::synced_copy_usable(uint64_t field) const {
  if (!synced_now_ || interrupt_since_run_ || (synced_fields_ & field) == 0 ||
      (synced_fields_ & KVM_SYNC_X86_SREGS) == 0)
    return false;
  const kvm_sregs& synced = run_state()->s.regs.sregs;
  return std::all_of(std::begin(synced.interrupt_bitmap), std::end(synced.interrupt_bitmap),
                     [](uint64_t word) { return word == 0; });
}

kvm_sregs Vcpu::get_sregs() const {
  if (synced_copy_usable(KVM_SYNC_X86_SREGS)) return run_state()->s.regs.sregs;
  return get_sregs_from_kvm();
}

kvm_sregs Vcpu::get_sregs_for_mode() const {
  if (synced_now_ && (synced_fields_ & KVM_SYNC_X86_SREGS)) return run_state()->s.regs.sregs;
  return get_sregs_from_kvm();
}

kvm_vcpu_events Vcpu::get_vcpu_events() const {
  if (synced_copy_usable(KVM_SYNC_X86_EVENTS)) return run_state()->s.regs.events;
  kvm_vcpu_events value{};
  checked_ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &value);
  return value;
}

kvm_sregs Vcpu::get_sregs_from_kvm() const {
  kvm_sregs value{};
  checked_ioctl(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS", &value);
  return value;
}

#define VCPU_GET(type, fn, request)                      \
  type Vcpu::fn() const {                                \
    type value{};                                        \
    checked_ioctl(fd_.get(), request, #request, &value); \
    return value;                                        \
  }
#define VCPU_SET(type, fn, request)                     \
  void Vcpu::fn(const type& value) {                    \
    synced_now_ = false;                                \
    type copy = value;                                  \
    checked_ioctl(fd_.get(), request, #request, &copy); \
  }

VCPU_SET(kvm_regs, set_regs, KVM_SET_REGS)
VCPU_SET(kvm_sregs, set_sregs, KVM_SET_SREGS)
VCPU_GET(kvm_fpu, get_fpu, KVM_GET_FPU)
VCPU_SET(kvm_fpu, set_fpu, KVM_SET_FPU)
VCPU_SET(kvm_vcpu_events, set_vcpu_events, KVM_SET_VCPU_EVENTS)
VCPU_GET(kvm_debugregs, get_debugregs, KVM_GET_DEBUGREGS)
VCPU_SET(kvm_debugregs, set_debugregs, KVM_SET_DEBUGREGS)
VCPU_GET(kvm_xcrs, get_xcrs, KVM_GET_XCRS)
VCPU_SET(kvm_xcrs, set_xcrs, KVM_SET_XCRS)
#undef VCPU_GET
#undef VCPU_SET

// Not with single-stepping on either side: KVM then also notes the RIP the
// step starts from and sets RFLAGS.TF, each time.
void Vcpu::set_guest_debug(const kvm_guest_debug& debug) {
  const bool stepping =
      ((debug.control | (guest_debug_ ? guest_debug_->control : 0)) & KVM_GUESTDBG_SINGLESTEP) != 0;
  if (guest_debug_ && !stepping && std::memcmp(&*guest_debug_, &debug, sizeof debug) == 0) return;
  // Single-stepping sets RFLAGS.TF. Breakpoints alone change no register
  // the run area holds: the copy stays valid (~130 KVM_GET_SREGS fewer per
  // spin3 recording, whose return captures arm and free the fourth register).
  if (stepping) synced_now_ = false;
  kvm_guest_debug copy = debug;
  guest_debug_.reset();  // unknown should the ioctl fail
  checked_ioctl(fd_.get(), KVM_SET_GUEST_DEBUG, "KVM_SET_GUEST_DEBUG", &copy);
  guest_debug_ = debug;
}

std::vector<kvm_msr_entry> Vcpu::get_msrs(std::span<const uint32_t> indices) const {
  FlexBuffer<CountAndPadHeader, kvm_msr_entry> buffer(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buffer.entries()[i].index = indices[i];
  int read = checked_ioctl(fd_.get(), kGetMsrs, "KVM_GET_MSRS", buffer.get());
  if (static_cast<size_t>(read) != indices.size())
    throw librr::SystemError("KVM_GET_MSRS: could not read MSR " +
                             std::to_string(indices[static_cast<size_t>(read)]));
  return {buffer.entries(), buffer.entries() + indices.size()};
}

void Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
  synced_now_ = false;  // EFER is in the special registers
  FlexBuffer<CountAndPadHeader, kvm_msr_entry> buffer(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  int written = checked_ioctl(fd_.get(), kSetMsrs, "KVM_SET_MSRS", buffer.get());
  if (static_cast<size_t>(written) != entries.size())
    throw librr::SystemError("KVM_SET_MSRS: could not write MSR " +
                             std::to_string(entries[static_cast<size_t>(written)].index));
}

void Vcpu::interrupt(uint32_t vector) {
  interrupt_since_run_ = true;  // the special registers' interrupt bitmap, the events
  kvm_interrupt request{};
  request.irq = vector;
  checked_ioctl(fd_.get(), KVM_INTERRUPT, "KVM_INTERRUPT", &request);
}

void Vcpu::set_cpuid2(std::span<const kvm_cpuid_entry2> entries) {
  synced_now_ = false;
  FlexBuffer<CountAndPadHeader, kvm_cpuid_entry2> buffer(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  checked_ioctl(fd_.get(), kSetCpuid2, "KVM_SET_CPUID2", buffer.get());
}

void Vcpu::set_signal_mask(const sigset_t* mask) {
  if (mask == nullptr) {
    checked_ioctl(fd_.get(), kSetSignalMask, "KVM_SET_SIGNAL_MASK", nullptr);
    return;
  }
  // The kernel's sigset is 8 bytes on x86_64, not glibc's 128-byte sigset_t.
  constexpr uint32_t kKernelSigsetSize = 8;
  FlexBuffer<CountHeader, uint8_t> buffer(kKernelSigsetSize);
  std::memcpy(buffer.entries(), mask, kKernelSigsetSize);
  checked_ioctl(fd_.get(), kSetSignalMask, "KVM_SET_SIGNAL_MASK", buffer.get());
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
  writes_ = std::make_unique<UserspaceWrites>(size);
}

}  // namespace vmm::kvm
