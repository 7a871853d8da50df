#pragma once
// Where the UART's bytes go and come from. Output is a plain sink. Input
// arrives asynchronously (a reader thread for terminals and sockets); the
// UART takes it only when the machine asks it to (at an asynchronous stop of
// the vCPU), which is the single point record/replay logs input bytes at.
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "kvm/kvm.h"

namespace vmm {

class SerialOutput {
 public:
  virtual ~SerialOutput() = default;
  virtual void write(uint8_t byte) = 0;
};

// Writes every byte to a file descriptor (stdout by default), unbuffered so
// that a guest that dies mid-line still shows what it printed.
class FdSerialOutput final : public SerialOutput {
 public:
  explicit FdSerialOutput(int fd = 1) : fd_(fd) {}
  void write(uint8_t byte) override;

 private:
  int fd_;
};

// Collects output in memory (tests, and tools that match on the console).
class BufferSerialOutput final : public SerialOutput {
 public:
  void write(uint8_t byte) override;
  std::string contents() const;

 private:
  mutable std::mutex mutex_;
  std::string data_;
};

class SerialInput {
 public:
  virtual ~SerialInput() = default;
  // Moves up to out.size() available bytes into `out`; never blocks.
  virtual size_t take(std::span<uint8_t> out) = 0;
  virtual bool has_data() const = 0;
  // Called (from any thread) whenever new bytes become available; the machine
  // installs its vCPU kick here.
  void set_data_ready_callback(std::function<void()> callback) {
    std::lock_guard lock(callback_mutex_);
    data_ready_ = std::move(callback);
  }

 protected:
  void notify_data_ready();

 private:
  std::mutex callback_mutex_;
  std::function<void()> data_ready_;
};

// Input that arrives into a thread-safe queue and is taken from it: the
// common part of the buffer and file-descriptor inputs.
class QueuedSerialInput : public SerialInput {
 public:
  size_t take(std::span<uint8_t> out) final;
  bool has_data() const final;

 protected:
  // Queues bytes and tells the machine (from any thread).
  void enqueue(std::span<const uint8_t> bytes);

 private:
  mutable std::mutex mutex_;
  std::deque<uint8_t> pending_;
};

// A fixed byte string, all available from the start.
class BufferSerialInput final : public QueuedSerialInput {
 public:
  explicit BufferSerialInput(std::string_view data);
  // Appends bytes later (tests typing into a running guest).
  void push(std::string_view more);
};

// Bytes read from a file descriptor by a background thread: a terminal (put
// into raw mode, restored on destruction), a connected socket, or a file.
class FdSerialInput final : public QueuedSerialInput {
 public:
  // Takes ownership of `fd` when `owns` is true.
  FdSerialInput(int fd, bool owns);
  ~FdSerialInput() override;

 private:
  void reader_loop();

  int fd_;
  bool owns_;
  kvm::Fd stop_event_;  // eventfd that wakes the reader for shutdown
  bool restore_terminal_ = false;
  std::array<uint8_t, 64> saved_termios_{};  // struct termios, kept opaque here
  std::thread reader_;
};

// Parses a --serial-in value: "stdin", "none", "unix:PATH" (connects to a
// listening Unix socket) or a file path. Returns nullptr for "none".
std::unique_ptr<SerialInput> open_serial_input(const std::string& spec);

}  // namespace vmm
