#include "librr/recorder.h"

#include <cstring>

namespace librr {

Recorder::Recorder(const std::filesystem::path& log_path, LogWriterOptions options)
    : log_(std::make_unique<LogWriter>(log_path, std::move(options))) {}

Recorder::~Recorder() = default;

void Recorder::append(Event event) {
  const size_t type = static_cast<size_t>(event_type(event)) - 1;
  ++stats_.records[type];
  stats_.bytes[type] += encode_event(event).size();
  log_->append(event);
}

void Recorder::interrupt(const Position& pos, uint8_t vector, uint32_t line) {
  append(InterruptDelivery{pos, vector, line});
}

void Recorder::input(const Position& pos, std::string_view channel,
                     std::span<const uint8_t> bytes) {
  append(Input{pos, std::string(channel), {bytes.begin(), bytes.end()}});
}

void Recorder::clock(const Position& pos, uint64_t guest_ns) {
  uint8_t bytes[8];
  std::memcpy(bytes, &guest_ns, 8);
  input(pos, channels::kClock, bytes);
}

void Recorder::async_position(AsyncPosition record) {
  if (auto* delta = std::get_if<MemoryDelta>(&record.memory))
    stats_.memory_delta_pages += delta->pages.size();
  append(std::move(record));
}

void Recorder::state_digest(StateDigest record) { append(std::move(record)); }

void Recorder::checkpoint(CheckpointRef record) { append(std::move(record)); }

void Recorder::finish(const Position& pos, std::string_view reason, int32_t exit_status) {
  append(EndOfRecording{pos, std::string(reason), exit_status});
  log_->close();
}

uint64_t decode_clock_input(std::span<const uint8_t> data) {
  if (data.size() != 8)
    throw FormatError("clock input must be 8 bytes, has " + std::to_string(data.size()));
  uint64_t ns;
  std::memcpy(&ns, data.data(), 8);
  return ns;
}

}  // namespace librr
