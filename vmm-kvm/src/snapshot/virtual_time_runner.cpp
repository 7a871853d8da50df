#include "snapshot/virtual_time_runner.h"

#include "clock/host_clock.h"
#include "machine/vcpu_kicker.h"

namespace vmm {

VirtualTimeRunner::VirtualTimeRunner(Machine& machine, VirtualClock& clock,
                                     const ClockSettings& settings, const SerialInput* serial_input)
    : machine_(machine), clock_(clock), settings_(settings), serial_input_(serial_input) {}

void VirtualTimeRunner::advance_clock_to(uint64_t guest_ns) {
  clock_.advance_to(guest_ns);
  machine_.advance_timed_devices();
}

void VirtualTimeRunner::at_synchronous_exit() {
  // Before the device runs, so that a PIT read sees this exit's time.
  advance_clock_to(clock_.now_ns() + settings_.ns_per_exit);
  machine_.dispatch_synchronous_exit();
  if (auto done = machine_.take_pending_result()) {
    result_ = std::move(done);
    return;
  }
  if (machine_.run_state().exit_reason == KVM_EXIT_HLT) {
    at_halt();
    return;
  }
  machine_.uart().pull_input();
  machine_.pump_net();
}

// KVM continues after the HLT when re-entered, so return only once an
// interrupt is pending (or the run must end).
void VirtualTimeRunner::at_halt() {
  kvm_run& run = machine_.run_state();
  for (;;) {
    machine_.advance_timed_devices();
    machine_.uart().pull_input();
    machine_.pump_net();
    if (machine_.pic().has_pending_interrupt()) return;
    if (!run.if_flag) {
      result_ = RunResult{RunResult::Kind::kHaltedForever, 0,
                          "guest halted with interrupts disabled at " + machine_.describe_rip()};
      return;
    }
    const uint64_t deadline = machine_.next_deadline();
    if (deadline != TimedDevice::kNoDeadline) {
      advance_clock_to(deadline);  // idle skip
      ++idle_skips_;
      continue;
    }
    // No timer armed: only input can wake the guest, and it arrives in host time.
    const bool input_possible = serial_input_ != nullptr || machine_.net_can_receive();
    if (!input_possible) {
      result_ =
          RunResult{RunResult::Kind::kHaltedForever, 0,
                    "guest halted with no timer armed and no input at " + machine_.describe_rip()};
      return;
    }
    machine_.kicker().wait_for_kick(VcpuKicker::kNever);
    machine_.kicker().acknowledge(&run);
    if (machine_.take_stop_request()) {
      result_ = RunResult{RunResult::Kind::kStopped, 0, "stopped while the guest was halted"};
      return;
    }
  }
}

void VirtualTimeRunner::at_asynchronous_stop(uint64_t armed_host_ns) {
  machine_.kicker().acknowledge(&machine_.run_state());
  // A kick for input or a stop request changes nothing the guest sees; only
  // the preemption timer moves guest time.
  if (armed_host_ns != VcpuKicker::kNever && host_monotonic_ns() >= armed_host_ns) {
    ++preemptions_;
    const uint64_t deadline = machine_.next_deadline();
    advance_clock_to(deadline != TimedDevice::kNoDeadline ? deadline
                                                          : clock_.now_ns() + settings_.preempt_ns);
  }
  machine_.uart().pull_input();
  machine_.pump_net();
}

RunResult VirtualTimeRunner::run(uint64_t stop_at_ns) {
  machine_.kicker().bind_to_current_thread(&machine_.run_state());
  struct Unbind {
    VcpuKicker& kicker;
    ~Unbind() {
      kicker.kick_at(VcpuKicker::kNever);
      kicker.unbind();
    }
  } unbind{machine_.kicker()};

  for (;;) {
    if (result_) return *std::exchange(result_, std::nullopt);
    if (machine_.take_stop_request())
      return RunResult{RunResult::Kind::kStopped, 0, "stopped at " + machine_.describe_rip()};
    if (clock_.now_ns() >= stop_at_ns)
      return RunResult{RunResult::Kind::kStopped, 0, "reached the requested guest time"};
    if (machine_.interrupt_deliverable()) machine_.inject_interrupt();
    const uint64_t armed =
        settings_.preempt_ns == 0 ? VcpuKicker::kNever : host_monotonic_ns() + settings_.preempt_ns;
    machine_.kicker().kick_at(armed);
    const Machine::Exit exit = machine_.enter_guest();
    switch (exit.kind) {
      case Machine::Exit::Kind::kSynchronous:
        at_synchronous_exit();
        break;
      case Machine::Exit::Kind::kAsynchronous:
        at_asynchronous_stop(armed);
        break;
      case Machine::Exit::Kind::kSpurious:
        break;
      case Machine::Exit::Kind::kTerminal:
        return exit.result;
    }
  }
}

}  // namespace vmm
