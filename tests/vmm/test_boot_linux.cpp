// The Linux 64-bit boot path with synthetic kernels: a tiny 64-bit "kernel"
// that prints a byte, then the first byte of the command line found through
// boot_params.hdr.cmd_line_ptr, and exits with boot_params.e820_entries.
// Covers both containers (vmlinux-style ELF without the PVH note, bzImage).
#include <asm/bootparam.h>
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "boot/boot.h"
#include "boot/layout.h"
#include "machine/machine.h"
#include "test_machine_support.h"

namespace vmm {
namespace {

const std::vector<uint8_t> kProbeKernel = {
    0x66, 0xba, 0xf8, 0x03,              // mov dx, 0x3f8
    0xb0, 'L',  0xee,                    // mov al, 'L'; out dx, al
    0x8b, 0x86, 0x28, 0x02, 0x00, 0x00,  // mov eax, [rsi + 0x228]  (hdr.cmd_line_ptr)
    0x8a, 0x00, 0xee,                    // mov al, [rax]; out dx, al
    0x8a, 0x86, 0xe8, 0x01, 0x00, 0x00,  // mov al, [rsi + 0x1e8]  (e820_entries)
    0xe6, 0xf4, 0xf4,                    // out 0xf4, al; hlt
};

std::vector<uint8_t> make_vmlinux_elf() {
  constexpr uint64_t kLoad = 0x1000000;
  std::vector<uint8_t> file(0x1000 + kProbeKernel.size(), 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = 0xffffffff81000000ull;  // virtual, as in a real vmlinux
  eh.e_phoff = sizeof eh;
  eh.e_ehsize = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = 0x1000;
  ph.p_vaddr = 0xffffffff81000000ull;
  ph.p_paddr = kLoad;
  ph.p_filesz = kProbeKernel.size();
  ph.p_memsz = 0x2000;
  ph.p_flags = PF_R | PF_X;
  std::memcpy(file.data(), &eh, sizeof eh);
  std::memcpy(file.data() + sizeof eh, &ph, sizeof ph);
  std::memcpy(file.data() + 0x1000, kProbeKernel.data(), kProbeKernel.size());
  return file;
}

std::vector<uint8_t> make_bzimage() {
  constexpr size_t kSetupSectors = 1;
  const size_t kernel_offset = (kSetupSectors + 1) * 512;
  std::vector<uint8_t> file(kernel_offset + 0x200 + kProbeKernel.size(), 0);
  setup_header hdr{};
  hdr.setup_sects = kSetupSectors;
  hdr.boot_flag = 0xaa55;
  hdr.jump = static_cast<uint16_t>(0xeb | ((sizeof(setup_header) + 0x1f1 - 0x202) << 8));
  hdr.header = 0x53726448;
  hdr.version = 0x020f;
  hdr.initrd_addr_max = 0x7fffffff;
  hdr.kernel_alignment = 0x200000;
  hdr.relocatable_kernel = 1;
  hdr.xloadflags = 1;  // XLF_KERNEL_64
  hdr.init_size = 0x100000;
  std::memcpy(file.data() + 0x1f1, &hdr, sizeof hdr);
  std::memcpy(file.data() + kernel_offset + 0x200, kProbeKernel.data(), kProbeKernel.size());
  return file;
}

struct LinuxRun {
  RunResult result;
  std::string output;
  boot::BootInfo info;
  std::vector<uint8_t> initrd_copy;
};

LinuxRun run_linux(std::vector<uint8_t> kernel, const std::vector<uint8_t>& initrd) {
  LinuxRun run;
  BufferSerialOutput output;
  MachineConfig config;
  config.ram_bytes = 64ull << 20;
  config.serial_output = &output;
  Machine machine(config);
  boot::BootRequest request;
  request.kernel = std::move(kernel);
  request.kernel_path = "synthetic";
  request.cmdline = "console=ttyS0";
  request.initrd = initrd;
  run.info = boot::load_kernel(machine.vcpu(), machine.memory(), request);
  run.result = machine.run();
  run.output = output.contents();
  if (!initrd.empty()) {
    run.initrd_copy.resize(initrd.size());
    machine.memory().read(run.info.initrd_address, run.initrd_copy.data(), initrd.size());
    // The zero page must point at it.
    const auto params = machine.memory().read_obj<boot_params>(boot::kZeroPageAddress);
    EXPECT_EQ(params->hdr.ramdisk_image, run.info.initrd_address);
    EXPECT_EQ(params->hdr.ramdisk_size, initrd.size());
  }
  return run;
}

TEST(BootLinux, VmlinuxEntersIn64BitModeWithBootParams) {
  RR_SKIP_WITHOUT_KVM();
  const std::vector<uint8_t> initrd(10000, 0x5a);
  const LinuxRun run = run_linux(make_vmlinux_elf(), initrd);
  EXPECT_EQ(run.info.protocol, boot::Protocol::kLinux64);
  EXPECT_EQ(run.info.entry, 0x1000000u);
  ASSERT_EQ(run.result.kind, RunResult::Kind::kExitPort) << run.result.message;
  EXPECT_EQ(run.output, "Lc");           // 'c' of "console=ttyS0"
  EXPECT_EQ(run.result.exit_status, 3);  // three e820 entries
  EXPECT_EQ(run.info.initrd_address % 4096, 0u);
  EXPECT_GE(run.info.initrd_address, run.info.kernel_end);
  EXPECT_EQ(run.initrd_copy, initrd);
}

TEST(BootLinux, BzImageEntersAt0x200PastTheProtectedModeKernel) {
  RR_SKIP_WITHOUT_KVM();
  const LinuxRun run = run_linux(make_bzimage(), {});
  EXPECT_EQ(run.info.entry, 0x100200u);
  ASSERT_EQ(run.result.kind, RunResult::Kind::kExitPort) << run.result.message;
  EXPECT_EQ(run.output, "Lc");
  EXPECT_EQ(run.result.exit_status, 3);
}

TEST(BootLinux, RejectsImagesThatAreNeitherElfNorBzImage) {
  RR_SKIP_WITHOUT_KVM();
  MachineConfig config;
  config.ram_bytes = 16ull << 20;
  Machine machine(config);
  boot::BootRequest request;
  request.kernel_path = "garbage.bin";
  request.kernel.assign(4096, 0x90);
  EXPECT_THROW(boot::load_kernel(machine.vcpu(), machine.memory(), request), librr::FormatError);
  auto old_protocol = make_bzimage();
  old_protocol[0x206] = 0x01;  // version 2.01: no 64-bit entry
  request.kernel = old_protocol;
  EXPECT_THROW(boot::load_kernel(machine.vcpu(), machine.memory(), request), librr::FormatError);
}

}  // namespace
}  // namespace vmm
