// Execution speed per guest mode, the PIO exit round trip, and the cost of
// stopping a running vCPU with a signal.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <random>
#include <thread>

#include "librr/error.h"
#include "probe/measurements.h"
#include "probe/snippet.h"

namespace vmm::probe {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

bool is_32bit_counter(GuestMode mode) {
  return mode != GuestMode::long64_cpl0 && mode != GuestMode::long64_cpl3;
}

}  // namespace

ModeSpeed measure_speed(GuestMode mode) {
  ModeSpeed speed;
  speed.mode = std::string(mode_name(mode));
  speed.cpl = mode_cpl(mode);

  // loop: dec counter; jnz loop; <finish>. Two instructions per iteration;
  // the counter is big enough that a native loop still runs when the window
  // closes, and the iterations done are read back from RCX.
  Snippet code(mode);
  code.dec_counter().jnz_to(0).finish();
  ProbeGuest guest;
  guest.load(mode, code.code());
  kvm_regs regs = guest.regs();
  const uint64_t initial = is_32bit_counter(mode) ? 0xffffffffull : 1ull << 40;
  regs.rcx = initial;
  guest.set_regs(regs);

  const RunOutcome outcome = guest.run_for(milliseconds(150));
  if (outcome.error != 0)
    throw librr::SystemError(std::string("KVM_RUN: ") + std::strerror(-outcome.error));
  uint64_t remaining = guest.regs().rcx;
  if (is_32bit_counter(mode)) remaining &= 0xffffffff;
  if (!outcome.timed_out && !finished_normally(guest, mode))
    throw librr::Error("the loop stopped with exit " + exit_reason_name(outcome.exit_reason) +
                       " before the window closed");
  speed.instructions = 2 * (initial - remaining);
  // Per second of vCPU-thread CPU time, so a loaded host does not make native
  // code look emulated; the wall-clock window only bounds the measurement.
  const double seconds = outcome.cpu_seconds > 0 ? outcome.cpu_seconds : outcome.seconds;
  speed.instructions_per_second = static_cast<double>(speed.instructions) / seconds;
  speed.execution =
      speed.instructions_per_second > kNativeInstructionsPerSecond ? "native" : "emulated";
  speed.status = "ok";
  return speed;
}

PioCost measure_pio_cost() {
  // loop: out 0xf6, al; jmp loop -- at CPL0, where a guest kernel's device
  // drivers do their port I/O.
  PioCost cost;
  Snippet code(GuestMode::long64_cpl0);
  code.out_al(ports::kTick).jmp_to(0);
  ProbeGuest guest;
  guest.load(GuestMode::long64_cpl0, code.code());
  guest.run_once();  // the first exit includes one-time setup; not counted
  if (!guest.exited_on_port(ports::kTick))
    throw librr::Error("the PIO loop did not exit on its port");

  const auto window = milliseconds(150);
  const double cpu_start = thread_cpu_seconds();
  guest.interrupter().arm(window);
  while (!guest.interrupter().fired()) {
    const int result = guest.vcpu().run();
    if (result == -EINTR) continue;
    if (result != 0) throw librr::SystemError(std::string("KVM_RUN: ") + std::strerror(-result));
    if (!guest.exited_on_port(ports::kTick))
      throw librr::Error("unexpected exit " + exit_reason_name(guest.run_state()->exit_reason));
    ++cost.exits;
  }
  // CPU time of the vCPU thread: the exit's cost, not the scheduler's.
  const double seconds = thread_cpu_seconds() - cpu_start;
  guest.interrupter().disarm();
  if (cost.exits == 0) throw librr::Error("no PIO exit within the window");
  cost.exits_per_second = static_cast<double>(cost.exits) / seconds;
  cost.round_trip_us = 1e6 / cost.exits_per_second;
  cost.status = "ok";
  return cost;
}

StopCost measure_stop_cost() {
  // A native CPL3 loop (dec rcx; jnz) is stopped from another thread with the
  // VMM's mechanism: a signal whose handler sets immediate_exit. Latency is
  // from pthread_kill to KVM_RUN returning in the vCPU thread.
  StopCost cost;
  const GuestMode mode = GuestMode::long64_cpl3;
  Snippet code(mode);
  code.dec_counter().jnz_to(0).finish();
  ProbeGuest guest;
  guest.load(mode, code.code());
  kvm_regs regs = guest.regs();
  regs.rcx = 1ull << 50;
  guest.set_regs(regs);
  const uint64_t loop_start = ProbeGuest::code_address(mode);

  constexpr int kTries = 20;
  std::atomic<int> stops_seen{0};
  std::atomic<int64_t> signal_sent_ns{0};
  std::atomic<bool> give_up{false};
  const pthread_t vcpu_thread = guest.interrupter().thread();
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };

  std::thread stopper([&] {
    std::mt19937 random(12345);
    std::uniform_int_distribution<int> delay_us(2000, 4000);
    for (int i = 0; i < kTries && !give_up.load(); ++i) {
      // The random delay lets the vCPU re-enter the guest and run a while.
      std::this_thread::sleep_for(microseconds(delay_us(random)));
      signal_sent_ns.store(now_ns());
      pthread_kill(vcpu_thread, probe_stop_signal());
      const auto deadline = std::chrono::steady_clock::now() + milliseconds(500);
      while (stops_seen.load() <= i && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(microseconds(20));
      if (stops_seen.load() <= i) give_up.store(true);
    }
  });

  std::vector<double> latencies_us;
  uint64_t previous_rcx = regs.rcx;
  bool consistent = true;
  std::string failure;
  while (static_cast<int>(latencies_us.size()) < kTries && !give_up.load()) {
    const int result = guest.vcpu().run();
    if (result == -EINTR && guest.interrupter().fired()) {
      latencies_us.push_back(static_cast<double>(now_ns() - signal_sent_ns.load()) / 1000.0);
      const kvm_regs now = guest.regs();
      // Stopped inside the loop, with fewer iterations left than last time.
      if (now.rip < loop_start || now.rip > loop_start + 5 || now.rcx > previous_rcx)
        consistent = false;
      previous_rcx = now.rcx;
      guest.interrupter().disarm();
      stops_seen.fetch_add(1);
      continue;
    }
    if (result == -EINTR) continue;
    failure = result != 0 ? std::string("KVM_RUN: ") + std::strerror(-result)
                          : "unexpected exit " + exit_reason_name(guest.run_state()->exit_reason);
    give_up.store(true);
  }
  stopper.join();
  if (!failure.empty()) throw librr::Error(failure);
  if (latencies_us.size() < kTries)
    throw librr::Error("a signal did not stop the vCPU within 500 ms (stopped " +
                       std::to_string(latencies_us.size()) + " of " + std::to_string(kTries) +
                       " times)");
  cost.tries = kTries;
  double sum = 0;
  for (double latency : latencies_us) sum += latency;
  cost.mean_us = sum / kTries;
  cost.max_us = *std::max_element(latencies_us.begin(), latencies_us.end());
  cost.registers_consistent = consistent;
  cost.status = "ok";
  return cost;
}

}  // namespace vmm::probe
