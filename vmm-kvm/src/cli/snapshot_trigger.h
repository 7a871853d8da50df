#pragma once
// When `rr-vmm run --snapshot-out FILE` writes a snapshot (--snapshot-at):
//   time:DURATION  once the guest clock reaches DURATION since boot (250ms, 1.5s, 800us)
//   serial:TEXT    right after the guest prints TEXT on its serial console
//   signal         whenever the process receives SIGUSR1 (always armed with --snapshot-out)
// A trigger only raises a flag and stops the vCPU; the snapshot is written by
// the run loop between two exits (cli/snapshot_run.cpp).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "devices/serial_backends.h"
#include "machine/machine.h"

namespace vmm::cli {

struct SnapshotTrigger {
  enum class Kind { kGuestTime, kSerialText, kSignal };
  Kind kind = Kind::kSignal;
  uint64_t guest_ns = 0;  // kGuestTime
  std::string text;       // kSerialText
};

// Throws librr::Error naming the accepted forms.
SnapshotTrigger parse_snapshot_trigger(const std::string& spec);
// "250ms", "1.5s", "800us", "1000ns" (a bare number is milliseconds).
uint64_t parse_guest_duration_ns(const std::string& text);

// Passes every byte on to `inner` and calls `on_match` (on the vCPU thread)
// each time the bytes written end with one of `texts`.
class TextWatchingOutput final : public SerialOutput {
 public:
  TextWatchingOutput(SerialOutput& inner, std::vector<std::string> texts,
                     std::function<void()> on_match);
  void write(uint8_t byte) override;

 private:
  SerialOutput& inner_;
  std::vector<std::string> texts_;
  std::function<void()> on_match_;
  std::string tail_;  // the last bytes written, as long as the longest text
  size_t longest_ = 0;
};

// Prefixes each line with `prefix` and writes whole lines to `fd` with one
// write(2), so that clones sharing a terminal do not interleave mid-line.
class PrefixedLineOutput final : public SerialOutput {
 public:
  PrefixedLineOutput(int fd, std::string prefix) : fd_(fd), prefix_(std::move(prefix)) {}
  ~PrefixedLineOutput() override;
  void write(uint8_t byte) override;

 private:
  void flush();
  int fd_;
  std::string prefix_;
  std::string line_;
};

// The flag every trigger raises, and SIGUSR1 raising it while this object
// lives. The flag is consumed by the run loop.
class SnapshotRequests {
 public:
  explicit SnapshotRequests(Machine& machine);
  ~SnapshotRequests();
  SnapshotRequests(const SnapshotRequests&) = delete;
  SnapshotRequests& operator=(const SnapshotRequests&) = delete;
  // Async-signal-safe; callable from any thread.
  void request();
  bool take() { return pending_.exchange(false); }

 private:
  Machine& machine_;
  std::atomic<bool> pending_{false};
};

// Host-clock runs: raises `requests` once the guest clock (a HostClock)
// reaches each of `guest_ns` (sorted), from a helper thread.
class HostTimeTriggers {
 public:
  HostTimeTriggers(Machine& machine, SnapshotRequests& requests, std::vector<uint64_t> guest_ns);
  ~HostTimeTriggers();
  HostTimeTriggers(const HostTimeTriggers&) = delete;
  HostTimeTriggers& operator=(const HostTimeTriggers&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool cancelled_ = false;
  std::thread thread_;
};

}  // namespace vmm::cli
