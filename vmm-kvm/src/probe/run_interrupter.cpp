#include "probe/run_interrupter.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "librr/error.h"

namespace vmm::probe {
namespace {

// The handler can only reach globals; one vCPU at a time is interruptible in a
// probe child process, which the constructor enforces.
std::atomic<kvm_run*> g_target_run{nullptr};
std::atomic<bool> g_fired{false};

void on_stop_signal(int) {
  if (kvm_run* run = g_target_run.load()) run->immediate_exit = 1;
  g_fired.store(true);
}

}  // namespace

int probe_stop_signal() { return SIGRTMIN + 3; }

RunInterrupter::RunInterrupter(kvm::Vcpu& vcpu) : vcpu_(vcpu), thread_(pthread_self()) {
  if (g_target_run.load() != nullptr)
    throw librr::Error("RunInterrupter: another vCPU is already interruptible in this process");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
  if (sigaction(probe_stop_signal(), &action, nullptr) != 0) librr::throw_errno("sigaction");
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, probe_stop_signal());
  pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);

  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = probe_stop_signal();
  event._sigev_un._tid = gettid();
  if (timer_create(CLOCK_MONOTONIC, &event, &timer_) != 0) librr::throw_errno("timer_create");
  g_target_run.store(vcpu_.run_state());
  g_fired.store(false);
}

RunInterrupter::~RunInterrupter() {
  timer_delete(timer_);
  g_target_run.store(nullptr);
}

void RunInterrupter::arm(std::chrono::microseconds delay) {
  itimerspec spec{};
  auto us = std::max<int64_t>(delay.count(), 1);
  spec.it_value.tv_sec = us / 1000000;
  spec.it_value.tv_nsec = (us % 1000000) * 1000;
  if (timer_settime(timer_, 0, &spec, nullptr) != 0) librr::throw_errno("timer_settime");
}

void RunInterrupter::disarm() {
  itimerspec off{};
  timer_settime(timer_, 0, &off, nullptr);
  g_fired.store(false);
  vcpu_.set_immediate_exit(false);
}

bool RunInterrupter::fired() const { return g_fired.load(); }

}  // namespace vmm::probe
