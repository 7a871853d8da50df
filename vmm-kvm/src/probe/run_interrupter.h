#pragma once
// Stopping a vCPU that sits in KVM_RUN: a signal makes KVM_RUN return EINTR,
// and the handler also sets kvm_run->immediate_exit so that a signal landing
// while the thread is in user space between two KVM_RUNs is not lost (the next
// KVM_RUN then returns EINTR at once). This is the mechanism the VMM uses to
// stop a guest, so the probe measures with it too.
#include <pthread.h>
#include <time.h>

#include <chrono>

#include "kvm/kvm.h"

namespace vmm::probe {

// The signal used to stop vCPUs inside the probe (which runs its measurements
// in child processes, so it cannot collide with the VMM's own signals).
int probe_stop_signal();

// One per vCPU thread. Installs the handler, creates a per-thread timer and
// points the handler at this vCPU's run area.
class RunInterrupter {
 public:
  explicit RunInterrupter(kvm::Vcpu& vcpu);
  ~RunInterrupter();
  RunInterrupter(const RunInterrupter&) = delete;
  RunInterrupter& operator=(const RunInterrupter&) = delete;

  // Fires the stop signal at this thread after `delay`.
  void arm(std::chrono::microseconds delay);
  // Cancels a pending timer and clears the "fired" state and immediate_exit,
  // so the vCPU can run again.
  void disarm();
  // True once the stop signal was delivered since the last disarm().
  bool fired() const;
  pthread_t thread() const { return thread_; }

 private:
  kvm::Vcpu& vcpu_;
  timer_t timer_{};
  pthread_t thread_;
};

}  // namespace vmm::probe
