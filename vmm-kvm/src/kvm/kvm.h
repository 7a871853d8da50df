#pragma once
// Thin RAII wrappers over the raw KVM ioctl API (linux/kvm.h). They own file
// descriptors and mappings and turn every failing ioctl into a
// librr::SystemError naming the ioctl ("KVM_SET_SREGS: Invalid argument").
// Policy (what to put in the registers, which exits to handle) lives in the
// machine, not here, so that `rr-vmm probe` can use these wrappers to poke at
// KVM directly.
#include <linux/kvm.h>
#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "guest_memory.h"

namespace vmm::kvm {

// An owned file descriptor, closed in the destructor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// An owned mmap'd region, unmapped in the destructor.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();
  void* get() const { return addr_; }
  size_t size() const { return size_; }

 private:
  void reset();
  void* addr_ = nullptr;
  size_t size_ = 0;
};

class Vm;
class Vcpu;

// The /dev/kvm system handle.
class System {
 public:
  // Opens `path` (O_RDWR | O_CLOEXEC); throws SystemError("open /dev/kvm: ...").
  explicit System(const char* path = "/dev/kvm");
  int api_version() const;
  // KVM_CHECK_EXTENSION on /dev/kvm: 0 when unsupported, else a capability value.
  int check_extension(long capability) const;
  size_t vcpu_mmap_size() const;
  // KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits.
  std::vector<kvm_cpuid_entry2> supported_cpuid() const;
  // KVM_GET_MSR_INDEX_LIST: every MSR KVM can save/restore.
  std::vector<uint32_t> msr_index_list() const;
  Vm create_vm() const;
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
};

class Vm {
 public:
  Vm(Fd fd, size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}
  // flags: KVM_MEM_LOG_DIRTY_PAGES and/or KVM_MEM_READONLY. size 0 deletes the slot.
  void set_user_memory_region(uint32_t slot, uint64_t guest_phys_addr, uint64_t size,
                              void* host_addr, uint32_t flags = 0);
  // KVM_GET_DIRTY_LOG for a slot of `slot_size` bytes: one bit per 4 KiB page,
  // bit i of word i/64 = page i. Reading resets (and re-protects) the log.
  std::vector<uint64_t> get_dirty_log(uint32_t slot, uint64_t slot_size);
  // KVM_CHECK_EXTENSION on the VM fd (some capabilities are per VM).
  int check_extension(long capability) const;
  // Needed on Intel VMX before the first KVM_RUN; harmless elsewhere.
  void set_tss_addr(uint64_t addr);
  void set_identity_map_addr(uint64_t addr);
  void enable_cap(const kvm_enable_cap& cap);
  Vcpu create_vcpu(unsigned id);
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
  size_t vcpu_mmap_size_;
};

class Vcpu {
 public:
  Vcpu(Fd fd, Mapping run_area) : fd_(std::move(fd)), run_area_(std::move(run_area)) {}

  // KVM_RUN. Returns 0 after an exit (see run_state()->exit_reason), or -errno
  // (-EINTR when a signal or immediate_exit stopped it). Never throws.
  int run();
  // KVM_RUN calls so far and the host time spent inside them: the guest's
  // own execution (and KVM's handling of its exits), against which a VMM's
  // work between runs shows (`rr-vmm run --stats`, the record summary).
  uint64_t run_calls() const { return run_calls_; }
  uint64_t run_ns() const { return run_ns_; }
  kvm_run* run_state() const { return static_cast<kvm_run*>(run_area_.get()); }
  // Makes the next (or current, if set from a signal handler) KVM_RUN return -EINTR.
  void set_immediate_exit(bool on) { run_state()->immediate_exit = on ? 1 : 0; }

  // KVM_CAP_SYNC_REGS: KVM stores the general and special registers and the
  // pending events into the run area at every exit, and get_regs(),
  // get_sregs() and get_vcpu_events() read them there until the next call
  // that may change them (any set_*, interrupt()): ~5 us an ioctl saved, two
  // or three per exit of the recorder, two per saved vCPU state. `supported`
  // is the capability's value (the fields this KVM can sync).
  void enable_sync_regs(uint64_t supported);

  kvm_regs get_regs() const;
  void set_regs(const kvm_regs& regs);
  kvm_sregs get_sregs() const;
  // The special registers for the mode, control registers, segments and
  // descriptor tables only: the synced copy also while its interrupt bitmap
  // is set and after interrupt(), which changes nothing else there. Not for
  // a saved state, whose bitmap must be exact (get_sregs()). On a Linux boot
  // kvm_pvm's copy keeps a delivered interrupt in the bitmap at nearly every
  // exit, and the recorder reads the mode after each interrupt it injects.
  kvm_sregs get_sregs_for_mode() const;
  void set_sregs(const kvm_sregs& sregs);
  kvm_fpu get_fpu() const;
  void set_fpu(const kvm_fpu& fpu);
  // Reads the given MSR indices; returns (index, value) entries. Throws if
  // KVM returns fewer than asked (naming the first MSR it could not read).
  std::vector<kvm_msr_entry> get_msrs(std::span<const uint32_t> indices) const;
  void set_msrs(std::span<const kvm_msr_entry> entries);
  kvm_vcpu_events get_vcpu_events() const;
  void set_vcpu_events(const kvm_vcpu_events& events);
  kvm_debugregs get_debugregs() const;
  void set_debugregs(const kvm_debugregs& debugregs);
  kvm_xcrs get_xcrs() const;
  void set_xcrs(const kvm_xcrs& xcrs);
  // KVM_SET_GUEST_DEBUG, skipped when it would set again what the last call
  // set without single-stepping (nothing changes in KVM then; the recorder
  // arms the same debug registers again at most landmarks).
  void set_guest_debug(const kvm_guest_debug& debug);
  // KVM_INTERRUPT: queue an external interrupt (only without in-kernel irqchip).
  void interrupt(uint32_t vector);
  void set_cpuid2(std::span<const kvm_cpuid_entry2> entries);
  // KVM_SET_SIGNAL_MASK: the mask in force while the guest runs (nullptr clears it).
  void set_signal_mask(const sigset_t* mask);
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
  Mapping run_area_;
  std::optional<kvm_guest_debug> guest_debug_;  // as last set
  bool synced_copy_usable(uint64_t field) const;
  kvm_sregs get_sregs_from_kvm() const;  // never the synced copy
  uint64_t synced_fields_ = 0;           // KVM_SYNC_X86_* asked for at every exit
  bool synced_now_ = false;              // the run area holds them as they are now
  bool interrupt_since_run_ = false;     // interrupt(): the bitmap and the events changed
  uint64_t run_calls_ = 0;
  uint64_t run_ns_ = 0;
};

// Guest RAM: anonymous, private, MAP_NORESERVE so an idle 512 MiB guest costs
// only the pages it touches. Unmapped in the destructor.
class GuestRam {
 public:
  explicit GuestRam(uint64_t size);
  uint8_t* data() const { return static_cast<uint8_t*>(mapping_.get()); }
  uint64_t size() const { return mapping_.size(); }
  // Its write() calls are logged in userspace_writes().
  GuestMemory memory() const { return GuestMemory(data(), size(), writes_.get()); }
  UserspaceWrites& userspace_writes() const { return *writes_; }

 private:
  Mapping mapping_;
  std::unique_ptr<UserspaceWrites> writes_;
};

}  // namespace vmm::kvm
