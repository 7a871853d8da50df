// PVH boot (xen/arch-x86/hvm/start_info.h, as QEMU and Firecracker use it).
#include <fmt/format.h>

#include "boot/boot.h"
#include "boot/elf_image.h"
#include "boot/layout.h"
#include "boot/x86_setup.h"
#include "librr/error.h"

namespace vmm::boot {
namespace {
constexpr uint32_t kStartInfoMagic = 0x336ec578;

struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);
}  // namespace

BootInfo boot_pvh(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request) {
  const ElfImage image(request.kernel, request.kernel_path);
  if (!image.pvh_entry())
    throw librr::Error(request.kernel_path +
                       ": no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) in this ELF image");
  for (const ElfSegment& s : image.segments())
    if (s.memory_size && s.physical_address < kHighMemoryStart)
      throw librr::Error(fmt::format("{}: segment at {:#x} overlaps boot data below 1 MiB",
                                     request.kernel_path, s.physical_address));
  image.load(memory);

  HvmStartInfo info{};
  info.magic = kStartInfoMagic;
  info.version = 1;
  info.cmdline_paddr = write_cmdline(memory, request.cmdline);

  const auto map = e820_map(memory.size());
  for (size_t i = 0; i < map.size(); ++i)
    memory.write_obj(kMemmapAddress + i * sizeof(HvmMemmapEntry),
                     HvmMemmapEntry{map[i].address, map[i].size, map[i].type, 0});
  info.memmap_paddr = kMemmapAddress;
  info.memmap_entries = static_cast<uint32_t>(map.size());

  BootInfo result{Protocol::kPvh, *image.pvh_entry(), image.physical_end()};
  if (!request.initrd.empty()) {
    result.initrd_address = place_initrd(memory, request.initrd, image.physical_end(), ~0ull);
    result.initrd_size = request.initrd.size();
    memory.write_obj(kModlistAddress,
                     HvmModlistEntry{result.initrd_address, request.initrd.size(), 0, 0});
    info.nr_modules = 1;
    info.modlist_paddr = kModlistAddress;
  }
  memory.write_obj(kStartInfoAddress, info);

  write_gdt(memory);
  enter_protected_mode(vcpu, *image.pvh_entry(), static_cast<uint32_t>(kStartInfoAddress));
  return result;
}

}  // namespace vmm::boot
