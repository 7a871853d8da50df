#pragma once
// THE way anything outside the vCPU thread stops a running guest: a signal to
// the vCPU thread whose handler sets kvm_run->immediate_exit, so KVM_RUN
// returns -EINTR ("an asynchronous stop") whether the signal lands while the
// guest runs or just before it is entered. A POSIX timer delivers the same
// signal when the earliest device deadline is due. Record/replay hooks here.
#include <linux/kvm.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "kvm/kvm.h"

namespace vmm {

class VcpuKicker {
 public:
  VcpuKicker();
  ~VcpuKicker();
  VcpuKicker(const VcpuKicker&) = delete;
  VcpuKicker& operator=(const VcpuKicker&) = delete;

  // Binds the kicker to the calling thread, which runs `run` (call once per
  // run loop; unbinds in the destructor or on the next bind).
  void bind_to_current_thread(kvm_run* run);
  void unbind();
  bool bound() const { return bound_; }

  // Asks for an asynchronous stop as soon as possible; callable from any
  // thread, including the vCPU thread itself.
  void kick();
  // Kicks at host CLOCK_MONOTONIC time `host_ns` (replaces any earlier arming);
  // kNever disarms.
  static constexpr uint64_t kNever = UINT64_MAX;
  void kick_at(uint64_t host_ns);
  uint64_t armed_at() const { return armed_at_; }

  // Sleeps until `host_deadline_ns` (kNever: indefinitely) or until a kick,
  // whichever comes first. Used while the guest is halted.
  void wait_for_kick(uint64_t host_deadline_ns);
  // Clears a pending kick after the stop it asked for has happened.
  void acknowledge(kvm_run* run);

  static int signal_number();

 private:
  std::atomic<pid_t> thread_id_{0};
  std::atomic<bool> bound_{false};
  pthread_t thread_{};
  timer_t timer_{};
  bool timer_created_ = false;
  uint64_t armed_at_ = kNever;
  kvm::Fd wake_event_;  // eventfd: wakes wait_for_kick without a lost-wakeup race
};

}  // namespace vmm
