#pragma once
// Loading a kernel into guest memory and setting the vCPU to its entry state.
//   PVH:      ELF images with the Xen PHYS32_ENTRY note; 32-bit protected mode,
//             EBX = hvm_start_info (cmdline, e820 memmap, initrd as module 0).
//   Linux64:  vmlinux ELF without the note, or a bzImage; 64-bit long mode on
//             identity page tables, RSI = boot_params (zero page).
#include <cstdint>
#include <string>
#include <vector>

#include "guest_memory.h"
#include "kvm/kvm.h"

namespace vmm::boot {

enum class Protocol { kAuto, kPvh, kLinux64 };

struct BootRequest {
  std::vector<uint8_t> kernel;
  std::string kernel_path;  // for error messages
  std::vector<uint8_t> initrd;
  std::string cmdline;
  Protocol protocol = Protocol::kAuto;
};

struct BootInfo {
  Protocol protocol;    // the one actually used
  uint64_t entry;       // guest-physical entry point
  uint64_t kernel_end;  // one past the highest kernel byte
  uint64_t initrd_address = 0;
  uint64_t initrd_size = 0;
};

// Loads the kernel (and initrd, cmdline) and sets registers. Throws
// librr::Error / FormatError naming the file and the problem.
BootInfo load_kernel(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request);

// Reads a whole file; throws librr::SystemError("<path>: <strerror>").
std::vector<uint8_t> read_file(const std::string& path);

// Protocol-specific steps, exposed for tests.
BootInfo boot_pvh(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request);
BootInfo boot_linux64(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request);
// Writes the command line at kCmdlineAddress; returns its address.
uint64_t write_cmdline(const GuestMemory& memory, const std::string& cmdline);
// Places the initrd page-aligned at the top of RAM (below `limit`), above
// `lowest`; returns its address.
uint64_t place_initrd(const GuestMemory& memory, const std::vector<uint8_t>& initrd,
                      uint64_t lowest, uint64_t limit);

}  // namespace vmm::boot
