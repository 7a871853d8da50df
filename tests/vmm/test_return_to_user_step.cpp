// The step over the kernel's return to user mode (replay/return_to_user_step.h)
// on the real spin3 guest, run exit by exit up to its kernel's first iretq to
// user mode.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "boot/boot.h"
#include "machine/machine.h"
#include "replay/guest_handler_step.h"
#include "replay/hardware_breakpoints.h"
#include "replay/kernel_return_stop.h"
#include "replay/return_to_user_step.h"
#include "test_machine_support.h"

namespace vmm {
namespace {

constexpr uint8_t kInvalidOpcodeVector = 6;

std::string guest_path(const std::string& name) {
  return std::string(RR_BINARY_DIR) + "/guests/" + name + ".elf";
}

// Runs the booted guest until it stands on its kernel's iretq to user mode
// (a debug register there, found after the #UD handler once the IDT is set).
// Interrupts are not delivered: spin3 starts its first task before it needs one.
bool run_to_first_return_to_user(Machine& machine) {
  std::optional<uint64_t> iretq;
  for (int exits = 0; exits < 100'000; ++exits) {
    if (!iretq) {
      try {
        const kvm_sregs sregs = machine.vcpu().get_sregs_for_mode();
        const uint64_t entry = GuestHandler::for_vector(machine, sregs, kInvalidOpcodeVector).entry;
        if (entry != 0) iretq = find_iretq_after(machine, sregs, entry, 4096);
      } catch (const librr::Error&) {
        // no IDT yet
      }
      if (iretq) arm_hardware_breakpoints(machine, {&*iretq, 1});
    }
    const Machine::Exit exit = machine.enter_guest();
    if (exit.kind == Machine::Exit::Kind::kSynchronous) {
      if (machine.run_state().exit_reason == KVM_EXIT_HLT) return false;
      machine.dispatch_synchronous_exit();
      if (machine.take_pending_result()) return false;
      continue;
    }
    if (!is_debug_exit(machine, exit)) {
      if (exit.kind == Machine::Exit::Kind::kTerminal) return false;
      continue;
    }
    if (at_return_to_user(machine)) return true;
    // A return to kernel mode through it: step over, then watch again.
    run_with_hardware_breakpoints(machine, {}, /*single_step=*/true);
    arm_hardware_breakpoints(machine, {&*iretq, 1});
  }
  return false;
}

// The step recorder and replay make over a watched return: it ends at the
// address the iretq returns to, in user mode, with nothing of the planted
// int3 left. A step that never stops (the recorder once spun in it, with the
// main loop's interrupt-window request left in the run area, now cleared
// after the main loop's own run) fails here within 20 s instead of hanging.
TEST(ReturnToUserStep, EndsAtTheReturnAddressInUserMode) {
  RR_SKIP_WITHOUT_KVM();
  if (!std::filesystem::exists(guest_path("spin3")))
    GTEST_SKIP() << "guest " << guest_path("spin3") << " missing: build test-guests";
  const HardwareBreakpointSupport support = HardwareBreakpointSupport::from_probe();
  if (!support.honoured_at_cpl0)
    GTEST_SKIP() << "debug registers are not honoured at CPL0 on this host: no iretq watch";
  BufferSerialOutput output;
  MachineConfig config;
  config.serial_output = &output;
  Machine machine(config);
  boot::BootRequest request;
  request.kernel_path = guest_path("spin3");
  request.kernel = boot::read_file(request.kernel_path);
  boot::load_kernel(machine.vcpu(), machine.memory(), request);
  ASSERT_TRUE(run_to_first_return_to_user(machine)) << output.contents();
  const uint64_t frame_address = machine.vcpu().get_regs().rsp;
  const std::vector<uint8_t> frame = read_guest_virtual(
      machine, machine.vcpu().get_sregs_for_mode(), frame_address, InterruptFrame::kBytes);
  const InterruptFrame target = InterruptFrame::parse(frame);
  const std::vector<uint8_t> code =
      read_guest_virtual(machine, machine.vcpu().get_sregs_for_mode(), target.rip, 1);

  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int waited_ms = 0; waited_ms < 20'000 && !done; waited_ms += 10)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!done) {
      std::fprintf(stderr, "the step over the iretq did not return within 20 s\n");
      std::abort();
    }
  });
  const bool stepped = step_return_to_user(machine);
  done = true;
  watchdog.join();
  ASSERT_TRUE(stepped);
  EXPECT_EQ(machine.vcpu().get_regs().rip, target.rip);
  EXPECT_EQ(machine.vcpu().get_sregs().cs.selector & 3, 3u);
  EXPECT_EQ(read_guest_virtual(machine, machine.vcpu().get_sregs(), target.rip, 1), code)
      << "the int3 planted at the return address is gone";
}

}  // namespace
}  // namespace vmm
