// Run-loop tests with tiny guests written inline as 32-bit machine code,
// entered in flat protected mode at 1 MiB.
#include <gtest/gtest.h>
#include <sys/ioctl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "boot/layout.h"
#include "boot/x86_setup.h"
#include "machine/machine.h"
#include "test_machine_support.h"

namespace vmm {
namespace {
constexpr uint64_t kCodeAddress = 0x100000;

struct InlineGuest {
  BufferSerialOutput output;
  std::unique_ptr<Machine> machine;

  explicit InlineGuest(const std::vector<uint8_t>& code) {
    MachineConfig config;
    config.ram_bytes = 16ull << 20;
    config.serial_output = &output;
    machine = std::make_unique<Machine>(config);
    machine->memory().write(kCodeAddress, code.data(), code.size());
    boot::write_gdt(machine->memory());
    boot::enter_protected_mode(machine->vcpu(), kCodeAddress, 0);
  }
};

// mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov al,42; out 0xf4,al; hlt
const std::vector<uint8_t> kPrintAndExit = {0x66, 0xba, 0xf8, 0x03, 0xb0, 'O',  0xee, 0xb0,
                                            'K',  0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4};

TEST(Machine, InlineGuestPrintsAndExitsWithItsStatus) {
  RR_SKIP_WITHOUT_KVM();
  InlineGuest guest(kPrintAndExit);
  const RunResult result = guest.machine->run();
  EXPECT_EQ(result.kind, RunResult::Kind::kExitPort) << result.message;
  EXPECT_EQ(result.exit_status, 42);
  EXPECT_EQ(guest.output.contents(), "OK");
  EXPECT_EQ(guest.machine->stats().pio_exits, 3u);
  EXPECT_EQ(guest.machine->stats().landmarks, 3u);
}

TEST(Machine, I8042ResetEndsTheRun) {
  RR_SKIP_WITHOUT_KVM();
  // mov al,0xfe; out 0x64,al; hlt
  InlineGuest guest({0xb0, 0xfe, 0xe6, 0x64, 0xf4});
  const RunResult result = guest.machine->run();
  EXPECT_EQ(result.kind, RunResult::Kind::kReset) << result.message;
}

TEST(Machine, HaltWithInterruptsDisabledIsReportedWithRip) {
  RR_SKIP_WITHOUT_KVM();
  InlineGuest guest({0xfa, 0xf4});  // cli; hlt
  const RunResult result = guest.machine->run();
  EXPECT_EQ(result.kind, RunResult::Kind::kHaltedForever);
  EXPECT_NE(result.message.find("RIP=0x100002"), std::string::npos) << result.message;
}

TEST(Machine, RequestStopFromAnotherThreadStopsASpinningGuest) {
  RR_SKIP_WITHOUT_KVM();
  InlineGuest guest({0xeb, 0xfe});  // jmp $
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    guest.machine->request_stop();
  });
  const RunResult result = guest.machine->run();
  stopper.join();
  EXPECT_EQ(result.kind, RunResult::Kind::kStopped) << result.message;
  EXPECT_GE(guest.machine->stats().asynchronous_stops, 1u);
  EXPECT_EQ(guest.machine->vcpu().get_regs().rip, kCodeAddress);
}

TEST(Machine, PioExitRoundTrip) {
  RR_SKIP_WITHOUT_KVM();
  constexpr uint32_t kIterations = 20000;
  // mov ecx,N; l: out 0x80,al; dec ecx; jnz l; mov al,7; out 0xf4,al; hlt
  std::vector<uint8_t> code = {0xb9};
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(kIterations >> (8 * i)));
  code.insert(code.end(), {0xe6, 0x80, 0x49, 0x75, 0xfb, 0xb0, 0x07, 0xe6, 0xf4, 0xf4});
  InlineGuest guest(code);
  const auto start = std::chrono::steady_clock::now();
  const RunResult result = guest.machine->run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(result.kind, RunResult::Kind::kExitPort) << result.message;
  EXPECT_EQ(result.exit_status, 7);
  EXPECT_EQ(guest.machine->stats().pio_exits, kIterations + 1);
  EXPECT_EQ(guest.machine->stats().unclaimed_pio, kIterations);
  const double microseconds = seconds * 1e6 / kIterations;
  std::printf("PIO exit round trip: %.2f us (%u exits in %.3f s)\n", microseconds, kIterations,
              seconds);
  ::testing::Test::RecordProperty("pio_round_trip_ns", static_cast<int>(microseconds * 1000));
}

TEST(Machine, VcpuStateSurvivesEncodeDecodeAndRestore) {
  RR_SKIP_WITHOUT_KVM();
  InlineGuest guest(kPrintAndExit);
  ASSERT_EQ(guest.machine->run().kind, RunResult::Kind::kExitPort);
  const VcpuState saved = guest.machine->save_vcpu_state();
  EXPECT_EQ(saved.msrs.size(), saved_msr_indices().size());
  librr::ByteWriter out;
  saved.save(out);
  librr::ByteReader in(out.data(), "vcpu state");
  const VcpuState decoded = VcpuState::load(in);
  in.expect_end();

  // Scramble the vCPU, restore, and read back.
  kvm_regs scrambled = saved.regs;
  scrambled.rax = 0xdeadbeef;
  scrambled.rip = 0x1234;
  guest.machine->vcpu().set_regs(scrambled);
  guest.machine->restore_vcpu_state(decoded);
  const VcpuState again = guest.machine->save_vcpu_state();
  EXPECT_EQ(again.regs.rip, saved.regs.rip);
  EXPECT_EQ(again.regs.rax, saved.regs.rax);
  EXPECT_EQ(again.sregs.cr0, saved.sregs.cr0);
  EXPECT_EQ(again.sregs.cs.selector, saved.sregs.cs.selector);
  for (size_t i = 0; i < saved.msrs.size(); ++i) {
    if (saved.msrs[i].index == 0x10) continue;  // the TSC keeps running
    EXPECT_EQ(again.msrs[i].data, saved.msrs[i].data) << "MSR " << std::hex << saved.msrs[i].index;
  }
  // Corrupt input is rejected, not misread.
  std::vector<uint8_t> bytes = out.data();
  bytes[0] = 9;
  librr::ByteReader bad(bytes);
  EXPECT_THROW(VcpuState::load(bad), librr::FormatError);
}

// Registers read after an exit come from the run area KVM syncs them into
// where it can (Vcpu::enable_sync_regs): each must equal what the ioctls
// report, at each exit, and a set must be read back, not the stale copy.
TEST(Machine, SyncedRegistersEqualTheIoctlsAtEveryExitAndFollowSets) {
  RR_SKIP_WITHOUT_KVM();
  // mov ecx,5; l: out 0x80,al; inc eax; dec ecx; jnz l; mov al,0; out 0xf4,al; hlt
  InlineGuest guest(
      {0xb9, 5, 0, 0, 0, 0xe6, 0x80, 0x40, 0x49, 0x75, 0xfa, 0xb0, 0x00, 0xe6, 0xf4, 0xf4});
  kvm::Vcpu& vcpu = guest.machine->vcpu();
  const int fd = vcpu.fd();
  for (int exit = 0; exit < 5; ++exit) {
    ASSERT_EQ(vcpu.run(), 0);
    ASSERT_EQ(guest.machine->run_state().exit_reason, KVM_EXIT_IO);
    // Arming or freeing a breakpoint (one never reached) keeps the copy.
    kvm_guest_debug debug{};
    if (exit % 2 == 0) {
      debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
      debug.arch.debugreg[0] = 0x7ff0;
      debug.arch.debugreg[7] = 0x1;  // DR0, execute
    }
    vcpu.set_guest_debug(debug);
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_vcpu_events events{};
    ASSERT_EQ(::ioctl(fd, KVM_GET_REGS, &regs), 0);
    ASSERT_EQ(::ioctl(fd, KVM_GET_SREGS, &sregs), 0);
    ASSERT_EQ(::ioctl(fd, KVM_GET_VCPU_EVENTS, &events), 0);
    const kvm_regs read = vcpu.get_regs();
    const kvm_sregs read_s = vcpu.get_sregs();
    const kvm_vcpu_events read_e = vcpu.get_vcpu_events();
    EXPECT_EQ(std::memcmp(&read, &regs, sizeof regs), 0) << "exit " << exit;
    EXPECT_EQ(std::memcmp(&read_s, &sregs, sizeof sregs), 0) << "exit " << exit;
    EXPECT_EQ(std::memcmp(&read_e, &events, sizeof events), 0) << "exit " << exit;
    // What the reads above may have used: the run area's copy itself.
    const kvm_sync_regs& copy = guest.machine->run_state().s.regs;
    EXPECT_EQ(std::memcmp(&copy.regs, &regs, sizeof regs), 0) << "exit " << exit;
    EXPECT_EQ(std::memcmp(&copy.sregs, &sregs, sizeof sregs), 0) << "exit " << exit;
    EXPECT_EQ(read.rcx, 5u - static_cast<uint64_t>(exit));
  }
  kvm_regs changed = vcpu.get_regs();
  changed.rbx = 0x5eed;
  vcpu.set_regs(changed);
  EXPECT_EQ(vcpu.get_regs().rbx, 0x5eedu);
}

TEST(Machine, RejectsMemorySizesOutsideTheMap) {
  RR_SKIP_WITHOUT_KVM();
  MachineConfig config;
  config.ram_bytes = 4ull << 30;
  EXPECT_THROW(Machine{config}, librr::Error);
  EXPECT_EQ(parse_memory_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_memory_size("1G"), 1ull << 30);
  EXPECT_THROW(parse_memory_size("12Q"), librr::Error);
}

// Device models write guest memory from userspace, where KVM's dirty log
// cannot see it: the machine's dirty log reports those pages too (record's
// memory copies depend on it), once, beside the vCPU's own writes.
TEST(Machine, DirtyLogReportsTheDeviceModelsWritesToo) {
  RR_SKIP_WITHOUT_KVM();
  MachineConfig config;
  config.ram_bytes = 16ull << 20;
  config.track_dirty_pages = true;
  Machine machine(config);
  machine.take_dirty_log();
  const auto marked = [](const std::vector<uint64_t>& bitmap, uint64_t gfn) {
    return gfn / 64 < bitmap.size() && (bitmap[gfn / 64] >> (gfn % 64)) & 1;
  };
  const std::vector<uint8_t> frame(6000, 0x5a);  // spans pages 0x201-0x202
  ASSERT_TRUE(machine.memory().write(0x201800, frame.data(), frame.size()));
  const GuestMemory copy = machine.memory();  // a device's copy reports as well
  ASSERT_TRUE(copy.write_obj<uint16_t>(0x300ffe, 7));
  const std::vector<uint64_t> dirty = machine.take_dirty_log();
  for (uint64_t gfn : {0x201, 0x202, 0x300}) EXPECT_TRUE(marked(dirty, gfn)) << std::hex << gfn;
  for (uint64_t gfn : {0x200, 0x203, 0x301}) EXPECT_FALSE(marked(dirty, gfn)) << std::hex << gfn;
  EXPECT_FALSE(marked(machine.take_dirty_log(), 0x201)) << "reported once";
  EXPECT_FALSE(copy.write(16ull << 20, frame.data(), 1)) << "outside RAM: refused, nothing marked";
  // The devices' part alone (record's refresh after a stop's inputs).
  ASSERT_TRUE(copy.write_obj<uint8_t>(0x400000, 1));
  EXPECT_TRUE(marked(machine.take_device_writes(), 0x400));
  EXPECT_FALSE(marked(machine.take_dirty_log(), 0x400)) << "taken by take_device_writes";
}

}  // namespace
}  // namespace vmm
