#include "cli/snapshot_trigger.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>

#include "clock/host_clock.h"
#include "librr/error.h"

namespace vmm::cli {
namespace {

SnapshotRequests* g_signal_requests = nullptr;

void request_on_signal(int) {
  if (g_signal_requests) g_signal_requests->request();
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

uint64_t parse_guest_duration_ns(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double scale = 0;
  if (unit.empty() || unit == "ms")
    scale = 1e6;
  else if (unit == "s")
    scale = 1e9;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ns")
    scale = 1;
  if (used == 0 || scale == 0 || !std::isfinite(value) || value < 0 || value * scale > 1e18)
    throw librr::Error("bad guest time '" + text + "' (use e.g. 250ms, 1.5s, 800us)");
  return static_cast<uint64_t>(std::llround(value * scale));
}

SnapshotTrigger parse_snapshot_trigger(const std::string& spec) {
  SnapshotTrigger trigger;
  if (starts_with(spec, "time:")) {
    trigger.kind = SnapshotTrigger::Kind::kGuestTime;
    trigger.guest_ns = parse_guest_duration_ns(spec.substr(5));
  } else if (starts_with(spec, "serial:") && spec.size() > 7) {
    trigger.kind = SnapshotTrigger::Kind::kSerialText;
    trigger.text = spec.substr(7);
  } else if (spec == "signal" || spec == "sigusr1") {
    trigger.kind = SnapshotTrigger::Kind::kSignal;
  } else {
    throw librr::Error("--snapshot-at " + spec +
                       ": expected time:DURATION (guest time since boot), serial:TEXT or signal");
  }
  return trigger;
}

TextWatchingOutput::TextWatchingOutput(SerialOutput& inner, std::vector<std::string> texts,
                                       std::function<void()> on_match)
    : inner_(inner), texts_(std::move(texts)), on_match_(std::move(on_match)) {
  for (const std::string& text : texts_) longest_ = std::max(longest_, text.size());
}

void TextWatchingOutput::write(uint8_t byte) {
  inner_.write(byte);
  if (longest_ == 0) return;
  tail_.push_back(static_cast<char>(byte));
  if (tail_.size() > longest_) tail_.erase(0, tail_.size() - longest_);
  for (const std::string& text : texts_) {
    if (tail_.size() >= text.size() &&
        tail_.compare(tail_.size() - text.size(), text.size(), text) == 0) {
      on_match_();
      return;
    }
  }
}

PrefixedLineOutput::~PrefixedLineOutput() {
  if (!line_.empty()) {
    line_.push_back('\n');
    flush();
  }
}

void PrefixedLineOutput::write(uint8_t byte) {
  if (line_.empty()) line_ = prefix_;
  line_.push_back(static_cast<char>(byte));
  if (byte == '\n') flush();
}

void PrefixedLineOutput::flush() {
  size_t done = 0;
  while (done < line_.size()) {
    const ssize_t n = ::write(fd_, line_.data() + done, line_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the reader went away; the guest keeps running
    done += static_cast<size_t>(n);
  }
  line_.clear();
}

SnapshotRequests::SnapshotRequests(Machine& machine) : machine_(machine) {
  g_signal_requests = this;
  struct sigaction action {};
  action.sa_handler = request_on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
}

SnapshotRequests::~SnapshotRequests() {
  signal(SIGUSR1, SIG_DFL);
  g_signal_requests = nullptr;
}

void SnapshotRequests::request() {
  pending_ = true;
  machine_.request_stop();  // eventfd write + pthread_kill: async-signal-safe
}

HostTimeTriggers::HostTimeTriggers(Machine& machine, SnapshotRequests& requests,
                                   std::vector<uint64_t> guest_ns) {
  auto* clock = dynamic_cast<HostClock*>(&machine.clock());
  if (guest_ns.empty() || !clock) return;
  std::sort(guest_ns.begin(), guest_ns.end());
  // Converted once, here: the run loop shifts the clock's origin while it
  // writes a snapshot (so the guest does not see the pause), and this thread
  // must not read it concurrently. Later triggers therefore fire early by
  // the time spent writing earlier snapshots.
  std::vector<uint64_t> host_deadlines;
  for (const uint64_t at : guest_ns) host_deadlines.push_back(clock->host_time_of(at));
  thread_ = std::thread([this, &requests, deadlines = std::move(host_deadlines)] {
    std::unique_lock lock(mutex_);
    for (const uint64_t deadline : deadlines) {
      const auto host_deadline =
          std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline));
      if (wake_.wait_until(lock, host_deadline, [this] { return cancelled_; })) return;
      requests.request();
    }
  });
}

HostTimeTriggers::~HostTimeTriggers() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace vmm::cli
