#pragma once
// Watches a host fd (a network backend's socket) from a helper thread and
// calls `on_ready` (the vCPU kick) once when it becomes readable. The vCPU
// thread then drains the fd at its next stop and calls rearm(); until then
// the watcher stays quiet, so frames left in the fd on purpose (the guest has
// no receive buffer: backpressure) do not make it kick over and over.
#include <atomic>
#include <functional>
#include <thread>

#include "kvm/kvm.h"

namespace vmm {

class FdReadyWatcher {
 public:
  // `fd` stays owned by the caller and must outlive the watcher.
  FdReadyWatcher(int fd, std::function<void()> on_ready);
  ~FdReadyWatcher();
  FdReadyWatcher(const FdReadyWatcher&) = delete;
  FdReadyWatcher& operator=(const FdReadyWatcher&) = delete;

  // The fd was seen readable (or hung up) since the last rearm().
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // The peer is gone (POLLHUP/POLLERR/POLLNVAL): once drained, nothing more will come.
  bool hung_up() const { return hung_up_.load(std::memory_order_acquire); }
  // vCPU thread, after draining: clears ready() and watches again.
  void rearm();
  // vCPU thread, after draining a hung-up fd: clears ready() and stops watching.
  void retire();

 private:
  void loop();
  // Blocks until `fd` is readable or the watcher is stopped; false when stopped.
  bool wait_readable(int fd, short& revents);

  int fd_;
  std::function<void()> on_ready_;
  kvm::Fd stop_event_;   // eventfd: ends the thread
  kvm::Fd rearm_event_;  // eventfd: the vCPU thread drained the fd
  std::atomic<bool> ready_{false};
  std::atomic<bool> hung_up_{false};
  std::thread thread_;
};

}  // namespace vmm
