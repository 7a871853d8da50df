#pragma once
// fsyncs files and their directories on a thread of its own, so that a
// recorder does not hold the guest back while the disk catches up: the
// files of a recording's start (snapshot, manifest) are written at once and
// made durable while the guest already runs. wait() makes the durability
// promise where it is due (a recording is durable when its recorder
// returns), and reports what could not be synced.
//
// The thread starts in the constructor: construct before pinning the caller
// to one CPU, so that the thread does not inherit that pin and take time
// from the vCPU there.
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

namespace librr {

class DeferredSync {
 public:
  DeferredSync();
  // Waits for what is queued; a failure there is dropped (call wait() to see it).
  ~DeferredSync();
  DeferredSync(const DeferredSync&) = delete;
  DeferredSync& operator=(const DeferredSync&) = delete;

  // Queues an fsync of `file` and then of the directory that holds it (its
  // name in that directory is then durable too).
  void add(const std::filesystem::path& file);
  // Blocks until everything queued is synced; throws SystemError naming the
  // first path that could not be opened or synced.
  void wait();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable idle_;
  std::deque<std::filesystem::path> queue_;  // files and directories, in order
  bool busy_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::thread thread_;
};

}  // namespace librr
