#pragma once
// Runs the FrameLog on its own thread so that compression, file writes,
// SQLite commits and fsyncs never stall the capture loop (a stalled loop means
// a full ring and kernel drops). The capture thread hands over batches of
// copied frames; commands (flush, rotate, close) go through the same queue and
// so stay ordered with the frames.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "frame_log.h"
#include "librr/coop_announcement.h"

namespace gateway {

// Frames copied out of the capture ring: one byte arena plus per-frame metadata.
struct FrameBatch {
  struct Entry {
    FrameToLog frame;  // `captured` is set from the arena when the frame is written
    size_t offset = 0;
    size_t length = 0;
  };
  std::vector<uint8_t> bytes;
  std::vector<Entry> entries;
  void add(const FrameToLog& frame);
  bool empty() const { return entries.empty(); }
};

class LogWriter {
 public:
  // `on_error` runs on the writer thread, once, with the failure's message.
  LogWriter(std::unique_ptr<FrameLog> log, std::function<void(const std::string&)> on_error,
            size_t max_queued_bytes = size_t{256} << 20);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Queues a batch. Returns false (and queues nothing) if the queue already
  // holds max_queued_bytes: the caller counts those frames as dropped.
  bool submit(FrameBatch&& batch);
  // Writes what is buffered; rotates if the segment is due (size or age).
  void request_flush();
  // Closes the segment and opens the next; waits and returns the new segment number.
  uint64_t rotate_and_wait();
  // Writes everything queued, closes the segment and stops the thread.
  void close();

  bool failed() const;
  // The first write error, empty if none.
  std::string error_message() const;
  // Frames that were accepted (submitted) but will never be in the log.
  uint64_t frames_unwritten() const;
  uint64_t frames_logged() const;
  uint64_t current_segment() const;
  // (gateway sequence, digest) of frames durably written since the last call.
  std::vector<librr::AnnouncedFrame> take_written();
  void update_limits(uint64_t segment_max_bytes, uint64_t segment_max_seconds);

 private:
  struct Flush {};
  struct Rotate {
    std::shared_ptr<std::promise<uint64_t>> done;
  };
  struct Close {};
  struct Limits {
    uint64_t segment_max_bytes, segment_max_seconds;
  };
  using Command = std::variant<FrameBatch, Flush, Rotate, Close, Limits>;
  void push(Command command);
  void run();
  void execute(Command& command);

  std::unique_ptr<FrameLog> log_;
  std::function<void(const std::string&)> on_error_;
  size_t max_queued_bytes_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Command> queue_;
  size_t queued_bytes_ = 0;
  bool failed_ = false;
  std::string error_message_;
  bool closed_ = false;
  uint64_t unwritten_after_failure_ = 0;
  uint64_t logged_ = 0;
  uint64_t segment_ = 0;
  uint64_t log_unwritten_ = 0;
  std::vector<librr::AnnouncedFrame> recorded_;  // writer thread only: not yet flushed
  std::vector<librr::AnnouncedFrame> written_;   // guarded by mutex_
  std::thread thread_;
};

}  // namespace gateway
