#include "machine/fd_ready_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "librr/error.h"

namespace vmm {
namespace {

kvm::Fd make_eventfd(const char* what) {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) librr::throw_errno(std::string("eventfd for ") + what);
  return kvm::Fd(fd);
}

void signal_eventfd(const kvm::Fd& event) {
  const uint64_t one = 1;
  if (::write(event.get(), &one, sizeof one) < 0) {
    // Only EAGAIN (counter saturated) is possible: the event is set already.
  }
}

void drain_eventfd(const kvm::Fd& event) {
  uint64_t count;
  while (::read(event.get(), &count, sizeof count) > 0) {
  }
}

}  // namespace

FdReadyWatcher::FdReadyWatcher(int fd, std::function<void()> on_ready)
    : fd_(fd),
      on_ready_(std::move(on_ready)),
      stop_event_(make_eventfd("the fd watcher's stop event")),
      rearm_event_(make_eventfd("the fd watcher's rearm event")) {
  thread_ = std::thread([this] { loop(); });
}

FdReadyWatcher::~FdReadyWatcher() {
  signal_eventfd(stop_event_);
  if (thread_.joinable()) thread_.join();
}

void FdReadyWatcher::rearm() {
  ready_.store(false, std::memory_order_release);
  signal_eventfd(rearm_event_);
}

void FdReadyWatcher::retire() {
  ready_.store(false, std::memory_order_release);
  signal_eventfd(stop_event_);
}

bool FdReadyWatcher::wait_readable(int fd, short& revents) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return false;  // cannot watch: the guest receives nothing more
    }
    if (fds[1].revents) return false;
    if (fds[0].revents) {
      revents = fds[0].revents;
      return true;
    }
  }
}

void FdReadyWatcher::loop() {
  short revents = 0;
  while (wait_readable(fd_, revents)) {
    if (revents & (POLLHUP | POLLERR | POLLNVAL)) hung_up_.store(true, std::memory_order_release);
    ready_.store(true, std::memory_order_release);
    on_ready_();
    // Quiet until the vCPU thread has drained the fd.
    if (!wait_readable(rearm_event_.get(), revents)) return;
    drain_eventfd(rearm_event_);
  }
}

}  // namespace vmm
