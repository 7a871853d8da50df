#include "machine/vcpu_kicker.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "clock/host_clock.h"
#include "librr/error.h"

namespace vmm {
namespace {
thread_local kvm_run* t_running_vcpu = nullptr;

void on_kick_signal(int) {
  // Async-signal-safe: a plain store into the shared kvm_run page.
  if (kvm_run* run = t_running_vcpu) run->immediate_exit = 1;
}

void install_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = on_kick_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a kick must interrupt the halt wait
    if (sigaction(VcpuKicker::signal_number(), &action, nullptr) < 0)
      librr::throw_errno("sigaction for the vCPU kick signal");
  });
}
}  // namespace

int VcpuKicker::signal_number() { return SIGRTMIN + 2; }

VcpuKicker::VcpuKicker() {
  install_handler_once();
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) librr::throw_errno("eventfd for the vCPU kicker");
  wake_event_ = kvm::Fd(fd);
}

VcpuKicker::~VcpuKicker() {
  unbind();
  if (timer_created_) timer_delete(timer_);
}

void VcpuKicker::bind_to_current_thread(kvm_run* run) {
  unbind();
  t_running_vcpu = run;
  thread_ = pthread_self();
  thread_id_ = static_cast<pid_t>(::gettid());
  // Make sure the kick signal is not blocked in this thread.
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, signal_number());
  pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);

  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = signal_number();
  event._sigev_un._tid = thread_id_;
  if (timer_create(CLOCK_MONOTONIC, &event, &timer_) < 0)
    librr::throw_errno("timer_create for device deadlines");
  timer_created_ = true;
  armed_at_ = kNever;
  bound_ = true;
}

void VcpuKicker::unbind() {
  if (!bound_.exchange(false)) return;
  if (timer_created_) {
    timer_delete(timer_);
    timer_created_ = false;
  }
  if (pthread_equal(pthread_self(), thread_)) t_running_vcpu = nullptr;
}

void VcpuKicker::kick() {
  uint64_t one = 1;
  if (::write(wake_event_.get(), &one, sizeof one) < 0 && errno != EAGAIN) {
    // The counter cannot overflow in practice; a failed wake only delays the stop.
  }
  if (!bound_) return;
  if (pthread_equal(pthread_self(), thread_)) {
    if (t_running_vcpu) t_running_vcpu->immediate_exit = 1;
    return;
  }
  pthread_kill(thread_, signal_number());
}

void VcpuKicker::kick_at(uint64_t host_ns) {
  if (!timer_created_ || host_ns == armed_at_) return;
  itimerspec spec{};
  if (host_ns != kNever) {
    // it_value zero would disarm: an already-due deadline fires in 1 ns.
    const uint64_t when = host_ns == 0 ? 1 : host_ns;
    spec.it_value.tv_sec = static_cast<time_t>(when / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(when % 1'000'000'000);
  }
  if (timer_settime(timer_, TIMER_ABSTIME, &spec, nullptr) < 0)
    librr::throw_errno("timer_settime for device deadline");
  armed_at_ = host_ns;
}

void VcpuKicker::wait_for_kick(uint64_t host_deadline_ns) {
  pollfd fd{wake_event_.get(), POLLIN, 0};
  timespec timeout{};
  const timespec* timeout_ptr = nullptr;
  if (host_deadline_ns != kNever) {
    const uint64_t now = host_monotonic_ns();
    const uint64_t remaining = host_deadline_ns > now ? host_deadline_ns - now : 0;
    timeout.tv_sec = static_cast<time_t>(remaining / 1'000'000'000);
    timeout.tv_nsec = static_cast<long>(remaining % 1'000'000'000);
    timeout_ptr = &timeout;
  }
  ::ppoll(&fd, 1, timeout_ptr, nullptr);  // EINTR (a kick signal) is a wake-up too
}

void VcpuKicker::acknowledge(kvm_run* run) {
  run->immediate_exit = 0;
  uint64_t count;
  while (::read(wake_event_.get(), &count, sizeof count) > 0) {
  }
}

}  // namespace vmm
