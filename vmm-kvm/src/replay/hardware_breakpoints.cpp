#include "replay/hardware_breakpoints.h"

#include <fmt/format.h>

#include <algorithm>

#include "clock/host_clock.h"
#include "librr/error.h"
#include "machine/vcpu_kicker.h"
#include "probe/probe.h"

namespace vmm {
namespace {

// DR7: global-enable bit G<i> (bit 2i+1) per slot, R/W and LEN 0 (instruction
// fetch, one byte), plus GE (bit 9) and the reserved-one bit 10, as QEMU's
// gdbstub and the probe set it.
constexpr uint64_t kDr7Base = 0x600;
constexpr uint64_t dr7_enable(size_t slot) { return 1ull << (2 * slot + 1); }

}  // namespace

HardwareBreakpointSupport HardwareBreakpointSupport::from_probe() {
  const probe::ProbeResult result = probe::load_or_run_probe();
  HardwareBreakpointSupport support;
  for (const int cpl : {0, 3}) {
    const probe::HwBreakpointCheck* check = result.hw_breakpoint_at(cpl);
    const bool honoured = check && check->ok() && check->honoured;
    (cpl == 0 ? support.honoured_at_cpl0 : support.honoured_at_cpl3) = honoured;
  }
  return support;
}

void arm_hardware_breakpoints(Machine& machine, std::span<const uint64_t> addresses,
                              bool single_step) {
  if (addresses.size() > kHardwareBreakpointSlots)
    throw librr::Error(fmt::format("{} hardware breakpoints asked for, the CPU has {} slots",
                                   addresses.size(), kHardwareBreakpointSlots));
  kvm_guest_debug debug{};
  if (single_step) debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
  if (!addresses.empty()) {
    debug.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
    uint64_t dr7 = kDr7Base;
    for (size_t slot = 0; slot < addresses.size(); ++slot) {
      debug.arch.debugreg[slot] = addresses[slot];
      dr7 |= dr7_enable(slot);
    }
    debug.arch.debugreg[7] = dr7;
  }
  machine.vcpu().set_guest_debug(debug);
}

ArmedHardwareBreakpoints::ArmedHardwareBreakpoints(Machine& machine,
                                                   std::span<const uint64_t> addresses,
                                                   bool single_step)
    : machine_(machine) {
  arm_hardware_breakpoints(machine, addresses, single_step);
}

ArmedHardwareBreakpoints::~ArmedHardwareBreakpoints() { arm_hardware_breakpoints(machine_, {}); }

ReexecutionDeadline::ReexecutionDeadline(Machine& machine, uint64_t limit_ns)
    : machine_(machine),
      at_(host_monotonic_ns() + limit_ns),
      kick_before_(machine.kicker().armed_at()) {
  VcpuKicker& kicker = machine_.kicker();
  if (!kicker.bound()) {
    kicker.bind_to_current_thread(&machine_.run_state());
    bound_here_ = true;
  }
  kicker.kick_at(std::min(at_, kick_before_));
}

ReexecutionDeadline::~ReexecutionDeadline() {
  VcpuKicker& kicker = machine_.kicker();
  if (bound_here_)
    kicker.unbind();
  else
    kicker.kick_at(kick_before_);
}

Machine::Exit enter_until_stopped(Machine& machine, uint64_t deadline_ns) {
  Machine::Exit exit;
  do {
    exit = machine.enter_guest();
    // A kick (the recorder's timer, input, a stop request) leaves
    // immediate_exit set: every KVM_RUN would return at once. The caller
    // regains control at the next breakpoint or step anyway, and a stop
    // request stays pending in the machine.
    if (exit.kind == Machine::Exit::Kind::kAsynchronous) {
      machine.kicker().acknowledge(&machine.run_state());
      if (deadline_ns != VcpuKicker::kNever && host_monotonic_ns() >= deadline_ns) return exit;
    }
  } while (exit.kind == Machine::Exit::Kind::kSpurious ||
           exit.kind == Machine::Exit::Kind::kAsynchronous);
  return exit;
}

Machine::Exit run_with_hardware_breakpoints(Machine& machine, std::span<const uint64_t> addresses,
                                            bool single_step, uint64_t deadline_ns) {
  const ArmedHardwareBreakpoints armed(machine, addresses, single_step);
  return enter_until_stopped(machine, deadline_ns);
}

bool stopped_at_hardware_breakpoint(Machine& machine) {
  // Only the exit reason: kvm_pvm's emulator is not known to fill in DR6, and
  // the caller compares RIP with its addresses anyway.
  return machine.run_state().exit_reason == KVM_EXIT_DEBUG;
}

bool is_debug_exit(Machine& machine, const Machine::Exit& exit) {
  return exit.kind == Machine::Exit::Kind::kTerminal && stopped_at_hardware_breakpoint(machine);
}

bool stopped_at_one_of(Machine& machine, const Machine::Exit& exit,
                       std::span<const uint64_t> addresses) {
  if (!is_debug_exit(machine, exit)) return false;
  const uint64_t rip = machine.vcpu().get_regs().rip;
  return std::find(addresses.begin(), addresses.end(), rip) != addresses.end();
}

}  // namespace vmm
