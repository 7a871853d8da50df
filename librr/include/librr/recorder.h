#pragma once
// The recording side of a session, independent of any VMM: the one place
// where every nondeterministic event becomes a log record. A VMM calls one
// method per kind of event at the position it happened; the Recorder keeps
// per-type counts and byte totals (for benchmarks and `info`).
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

#include "librr/events.h"
#include "librr/log.h"

namespace librr {

// Channel names used by VMMs built on librr. Free-form names are allowed; these
// are the ones the analyzer knows.
namespace channels {
inline constexpr std::string_view kClock = "clock";      // u64 LE guest nanoseconds
inline constexpr std::string_view kSerial0 = "serial0";  // bytes received by the first UART
inline constexpr std::string_view kNet0 = "net0";        // one received Ethernet frame
}  // namespace channels

struct RecorderStats {
  std::array<uint64_t, kEventTypeCount> records{};  // by EventType - 1
  std::array<uint64_t, kEventTypeCount> bytes{};    // encoded (uncompressed) bytes by type
  uint64_t memory_delta_pages = 0;
};

class Recorder {
 public:
  Recorder(const std::filesystem::path& log_path, LogWriterOptions options);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  void interrupt(const Position& pos, uint8_t vector, uint32_t line);
  void input(const Position& pos, std::string_view channel, std::span<const uint8_t> bytes);
  void clock(const Position& pos, uint64_t guest_ns);
  void async_position(AsyncPosition record);
  void state_digest(StateDigest record);
  void checkpoint(CheckpointRef record);
  // Appends EndOfRecording and closes the log (flush + fsync per policy).
  void finish(const Position& pos, std::string_view reason, int32_t exit_status);

  const RecorderStats& stats() const { return stats_; }
  LogWriter& log() { return *log_; }

 private:
  void append(Event event);

  std::unique_ptr<LogWriter> log_;
  RecorderStats stats_;
};

// Decodes the payload of an Input on channels::kClock.
uint64_t decode_clock_input(std::span<const uint8_t> data);

}  // namespace librr
