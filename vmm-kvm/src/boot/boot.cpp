#include "boot/boot.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "boot/elf_image.h"
#include "boot/layout.h"
#include "librr/error.h"

namespace vmm::boot {

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) librr::throw_errno(path);
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) librr::throw_errno("reading " + path);
  return data;
}

uint64_t write_cmdline(const GuestMemory& memory, const std::string& cmdline) {
  if (cmdline.size() + 1 > kCmdlineMaxBytes)
    throw librr::Error(fmt::format("kernel command line is {} bytes, at most {} fit",
                                   cmdline.size(), kCmdlineMaxBytes - 1));
  if (!memory.write(kCmdlineAddress, cmdline.c_str(), cmdline.size() + 1))
    throw librr::Error("guest RAM too small for the command line");
  return kCmdlineAddress;
}

uint64_t place_initrd(const GuestMemory& memory, const std::vector<uint8_t>& initrd,
                      uint64_t lowest, uint64_t limit) {
  const uint64_t top = std::min<uint64_t>(memory.size(), limit);
  const uint64_t size = initrd.size();
  if (size > top || ((top - size) & ~uint64_t{0xfff}) < lowest)
    throw librr::Error(
        fmt::format("initrd of {} KiB does not fit between the kernel (ends at {:#x}) and {:#x}; "
                    "give the guest more memory (--mem)",
                    size >> 10, lowest, top));
  const uint64_t address = (top - size) & ~uint64_t{0xfff};
  memory.write(address, initrd.data(), size);
  return address;
}

BootInfo load_kernel(kvm::Vcpu& vcpu, const GuestMemory& memory, const BootRequest& request) {
  if (request.kernel.empty()) throw librr::Error(request.kernel_path + ": empty kernel image");
  if (ElfImage::looks_like_elf(request.kernel)) {
    const ElfImage image(request.kernel, request.kernel_path);
    const bool use_pvh = request.protocol == Protocol::kPvh ||
                         (request.protocol == Protocol::kAuto && image.pvh_entry());
    if (use_pvh) return boot_pvh(vcpu, memory, request);
    return boot_linux64(vcpu, memory, request);
  }
  if (request.protocol == Protocol::kPvh)
    throw librr::Error(request.kernel_path + ": PVH boot needs an ELF image");
  return boot_linux64(vcpu, memory, request);  // bzImage (checked there)
}

}  // namespace vmm::boot
