// Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst):
// the kernel is entered in long mode with identity paging and RSI pointing
// at struct boot_params, skipping the real-mode setup code entirely.
#include <asm/bootparam.h>
#include <fmt/format.h>

#include <cstring>

#include "boot/boot.h"
#include "boot/elf_image.h"
#include "boot/layout.h"
#include "boot/x86_setup.h"
#include "librr/error.h"

namespace vmm::boot {
namespace {
constexpr uint32_t kHdrSignature = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint8_t kLoaderTypeUndefined = 0xff;
constexpr uint8_t kLoadedHigh = 0x01;
constexpr uint16_t kXlfKernel64 = 0x01;
constexpr uint64_t kSetupHeaderOffset = 0x1f1;
constexpr uint64_t kBzImageLoadAddress = 0x100000;
constexpr uint64_t k64BitEntryOffset = 0x200;
constexpr uint16_t kMinBzImageVersion = 0x020c;  // 2.12: xloadflags, 64-bit entry

void fill_common(boot_params& params, const GuestMemory& memory, const BootRequest& request,
                 uint64_t kernel_end, uint64_t initrd_limit, BootInfo& info) {
  setup_header& hdr = params.hdr;
  hdr.type_of_loader = kLoaderTypeUndefined;
  hdr.boot_flag = kBootFlag;
  hdr.header = kHdrSignature;
  hdr.loadflags |= kLoadedHigh;
  hdr.cmd_line_ptr = static_cast<uint32_t>(write_cmdline(memory, request.cmdline));
  hdr.cmdline_size = static_cast<uint32_t>(request.cmdline.size() + 1);
  if (!request.initrd.empty()) {
    info.initrd_address = place_initrd(memory, request.initrd, kernel_end, initrd_limit);
    info.initrd_size = request.initrd.size();
    hdr.ramdisk_image = static_cast<uint32_t>(info.initrd_address);
    hdr.ramdisk_size = static_cast<uint32_t>(request.initrd.size());
    params.ext_ramdisk_image = static_cast<uint32_t>(info.initrd_address >> 32);
    params.ext_ramdisk_size = static_cast<uint32_t>(request.initrd.size() >> 32);
  }
  const auto map = e820_map(memory.size());
  for (size_t i = 0; i < map.size(); ++i)
    params.e820_table[i] = {map[i].address, map[i].size, map[i].type};
  params.e820_entries = static_cast<uint8_t>(map.size());
}

BootInfo boot_vmlinux(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request) {
  const ElfImage image(request.kernel, request.kernel_path);
  image.load(memory);
  BootInfo info{Protocol::kLinux64, image.physical_entry(), image.physical_end()};
  boot_params params{};
  params.hdr.kernel_alignment = 0x1000000;
  params.hdr.version = kMinBzImageVersion;
  fill_common(params, memory, request, info.kernel_end, 0x80000000ull, info);
  memory.write_obj(kZeroPageAddress, params);
  write_gdt(memory);
  write_identity_page_tables(memory);
  enter_long_mode(vcpu, info.entry, kZeroPageAddress, kBootStackTop);
  return info;
}

BootInfo boot_bzimage(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request) {
  const auto& file = request.kernel;
  const std::string& path = request.kernel_path;
  if (file.size() < 0x206)
    throw librr::FormatError(path + ": neither an ELF file nor a bzImage (too small)", 0);
  uint32_t signature;
  std::memcpy(&signature, file.data() + 0x202, sizeof signature);
  if (signature != kHdrSignature)
    throw librr::FormatError(path + ": neither an ELF file nor a bzImage (no HdrS signature)",
                             0x202);
  // The header ends at 0x202 + the jump displacement stored at 0x201.
  const uint64_t header_end = 0x202 + file[0x201];
  if (header_end > file.size() || header_end - kSetupHeaderOffset > sizeof(setup_header))
    throw librr::FormatError(path + ": setup header runs past the end of the image", 0x201);
  boot_params params{};
  std::memcpy(&params.hdr, file.data() + kSetupHeaderOffset, header_end - kSetupHeaderOffset);
  const setup_header& hdr = params.hdr;
  if (hdr.header != kHdrSignature || hdr.boot_flag != kBootFlag)
    throw librr::FormatError(path + ": neither an ELF file nor a bzImage (no HdrS signature)",
                             0x202);
  if (hdr.version < kMinBzImageVersion || !(hdr.xloadflags & kXlfKernel64))
    throw librr::FormatError(
        fmt::format("{}: boot protocol {:#x} without a 64-bit entry point (need 2.12+ and "
                    "XLF_KERNEL_64)",
                    path, hdr.version),
        0x206);
  const uint64_t setup_sectors = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
  const uint64_t kernel_offset = (setup_sectors + 1) * 512;
  if (kernel_offset >= file.size())
    throw librr::FormatError(path + ": protected-mode kernel missing", 0x1f1);
  const uint64_t kernel_size = file.size() - kernel_offset;
  // The decompressor needs init_size bytes from the load address.
  const uint64_t footprint = std::max<uint64_t>(kernel_size, hdr.init_size);
  if (!memory.translate(kBzImageLoadAddress, footprint))
    throw librr::Error(fmt::format("{}: kernel needs {} MiB from 1 MiB, guest has {} MiB", path,
                                   footprint >> 20, memory.size() >> 20));
  memory.write(kBzImageLoadAddress, file.data() + kernel_offset, kernel_size);

  BootInfo info{Protocol::kLinux64, kBzImageLoadAddress + k64BitEntryOffset,
                kBzImageLoadAddress + footprint};
  const uint64_t initrd_limit = uint64_t{hdr.initrd_addr_max} + 1;
  fill_common(params, memory, request, info.kernel_end, initrd_limit, info);
  params.hdr.code32_start = static_cast<uint32_t>(kBzImageLoadAddress);
  memory.write_obj(kZeroPageAddress, params);
  write_gdt(memory);
  write_identity_page_tables(memory);
  enter_long_mode(vcpu, info.entry, kZeroPageAddress, kBootStackTop);
  return info;
}
}  // namespace

BootInfo boot_linux64(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request) {
  if (ElfImage::looks_like_elf(request.kernel)) return boot_vmlinux(vcpu, memory, request);
  return boot_bzimage(vcpu, memory, request);
}

}  // namespace vmm::boot
