#include "librr/deferred_sync.h"

#include <utility>

#include "posix_file.h"

namespace librr {

DeferredSync::DeferredSync() : thread_([this] { run(); }) {}

DeferredSync::~DeferredSync() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_one();
  thread_.join();
}

void DeferredSync::add(const std::filesystem::path& file) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(file);
    queue_.push_back(directory_holding(file));
  }
  work_ready_.notify_one();
}

void DeferredSync::wait() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

// Drains the queue before stopping: the destructor's wait is the last
// chance for what was queued to become durable.
void DeferredSync::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;
    const std::filesystem::path path = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    std::exception_ptr failure;
    try {
      sync_path(path);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (failure && !failure_) failure_ = failure;
    if (queue_.empty()) idle_.notify_all();
  }
}

}  // namespace librr
