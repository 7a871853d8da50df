#include "librr/replayer.h"

namespace librr {

Replayer::Replayer(const std::filesystem::path& log_path, LogReaderOptions options)
    : reader_(log_path, std::move(options)) {}

const Event* Replayer::peek() {
  if (!fetched_) {
    next_ = reader_.next_ref();
    fetched_ = true;
  }
  return next_;
}

const Event* Replayer::take_at(const Position& pos) {
  const Event* event = peek();
  if (!event || event_position(*event) != pos) return nullptr;
  fetched_ = false;
  ++consumed_;
  return event;
}

void Replayer::check_nothing_before(const Position& pos) {
  const Event* event = peek();
  if (event && event_position(*event) < pos)
    throw Divergence(pos, "the log has " + std::string(event_type_name(event_type(*event))) +
                              " at " + event_position(*event).to_string() +
                              ", which replay passed without reaching it");
}

}  // namespace librr
