#include "log_writer.h"

#include <time.h>

namespace gateway {
namespace {

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

void FrameBatch::add(const FrameToLog& frame) {
  // The arena may still move: the span is rebuilt from offset and length later.
  Entry entry{frame, bytes.size(), frame.captured.size()};
  entry.frame.captured = {};
  bytes.insert(bytes.end(), frame.captured.begin(), frame.captured.end());
  entries.push_back(entry);
}

LogWriter::LogWriter(std::unique_ptr<FrameLog> log,
                     std::function<void(const std::string&)> on_error, size_t max_queued_bytes)
    : log_(std::move(log)), on_error_(std::move(on_error)), max_queued_bytes_(max_queued_bytes) {
  segment_ = log_->current_segment();
  thread_ = std::thread([this] { run(); });
}

LogWriter::~LogWriter() {
  if (thread_.joinable()) close();
}

void LogWriter::push(Command command) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(command));
  }
  wake_.notify_one();
}

bool LogWriter::submit(FrameBatch&& batch) {
  if (batch.empty()) return true;
  {
    std::lock_guard lock(mutex_);
    if (failed_) {
      unwritten_after_failure_ += batch.entries.size();
      return true;
    }
    if (queued_bytes_ + batch.bytes.size() > max_queued_bytes_) return false;
    queued_bytes_ += batch.bytes.size();
    queue_.push_back(std::move(batch));
  }
  wake_.notify_one();
  return true;
}

void LogWriter::request_flush() { push(Flush{}); }
uint64_t LogWriter::rotate_and_wait() {
  auto done = std::make_shared<std::promise<uint64_t>>();
  auto result = done->get_future();
  push(Rotate{done});
  return result.get();
}

void LogWriter::close() {
  if (!thread_.joinable()) return;
  push(Close{});
  thread_.join();
}

bool LogWriter::failed() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

std::string LogWriter::error_message() const {
  std::lock_guard lock(mutex_);
  return error_message_;
}

uint64_t LogWriter::frames_unwritten() const {
  std::lock_guard lock(mutex_);
  return log_unwritten_ + unwritten_after_failure_;
}

uint64_t LogWriter::frames_logged() const {
  std::lock_guard lock(mutex_);
  return logged_;
}

uint64_t LogWriter::current_segment() const {
  std::lock_guard lock(mutex_);
  return segment_;
}

std::vector<librr::AnnouncedFrame> LogWriter::take_written() {
  std::lock_guard lock(mutex_);
  return std::exchange(written_, {});
}

void LogWriter::update_limits(uint64_t segment_max_bytes, uint64_t segment_max_seconds) {
  push(Limits{segment_max_bytes, segment_max_seconds});  // applied by the writer thread
}

void LogWriter::run() {
  for (;;) {
    Command command;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return !queue_.empty(); });
      command = std::move(queue_.front());
      queue_.pop_front();
      if (auto* batch = std::get_if<FrameBatch>(&command)) queued_bytes_ -= batch->bytes.size();
    }
    bool is_close = std::holds_alternative<Close>(command);
    bool already_failed;
    {
      std::lock_guard lock(mutex_);
      already_failed = failed_;
    }
    if (already_failed) {
      if (auto* batch = std::get_if<FrameBatch>(&command)) {
        std::lock_guard lock(mutex_);
        unwritten_after_failure_ += batch->entries.size();
      }
    } else {
      try {
        execute(command);
      } catch (const std::exception& e) {
        std::string message = e.what();
        {
          std::lock_guard lock(mutex_);
          failed_ = true;
          error_message_ = message;
          log_unwritten_ = log_->frames_unwritten();
        }
        on_error_(message);
      }
    }
    if (auto* rotate = std::get_if<Rotate>(&command)) rotate->done->set_value(current_segment());
    if (is_close) return;
  }
}

void LogWriter::execute(Command& command) {
  if (auto* batch = std::get_if<FrameBatch>(&command)) {
    for (size_t i = 0; i < batch->entries.size(); ++i) {
      auto& entry = batch->entries[i];
      entry.frame.captured = {batch->bytes.data() + entry.offset, entry.length};
      try {
        auto recorded = log_->record(entry.frame);
        recorded_.push_back({recorded.segment << 32 | recorded.ordinal, recorded.digest});
      } catch (...) {
        // The failing frame is counted by the log; the rest never reached it.
        std::lock_guard lock(mutex_);
        unwritten_after_failure_ += batch->entries.size() - i - 1;
        throw;
      }
    }
    return;
  }
  if (auto* limits = std::get_if<Limits>(&command)) {
    log_->update_limits(limits->segment_max_bytes, limits->segment_max_seconds);
    return;
  }
  if (std::holds_alternative<Close>(command)) {
    log_->close(realtime_ns());
  } else {
    log_->flush();
    uint64_t now = realtime_ns();
    if (std::holds_alternative<Rotate>(command) || log_->rotation_due(now)) log_->rotate(now);
  }
  std::lock_guard lock(mutex_);
  logged_ = log_->frames_logged();
  segment_ = log_->current_segment();
  written_.insert(written_.end(), recorded_.begin(), recorded_.end());
  recorded_.clear();
}

}  // namespace gateway
