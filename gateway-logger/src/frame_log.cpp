#include "frame_log.h"

#include <fmt/format.h>

namespace gateway {

FrameLog::FrameLog(FrameLogSettings settings, std::vector<LoggedInterface> interfaces,
                   StatisticsSource statistics, uint64_t now_ns)
    : settings_(std::move(settings)),
      interfaces_(std::move(interfaces)),
      statistics_(std::move(statistics)) {
  std::error_code ec;
  std::filesystem::create_directories(settings_.directory, ec);
  if (ec)
    throw WriteError(fmt::format("cannot create log directory {}: {}", settings_.directory.string(),
                                 ec.message()),
                     ec.value());
  index_ = std::make_unique<FrameIndex>(settings_.directory / kIndexFileName);
  open_segment(now_ns);
}

FrameLog::~FrameLog() = default;

void FrameLog::open_segment(uint64_t now_ns) {
  uint64_t number = next_segment_number(settings_.directory);
  segment_ =
      std::make_unique<SegmentFile>(settings_.directory, number, settings_.compression_level);
  segment_opened_ns_ = now_ns;
  segment_frames_ = 0;
  auto& out = segment_->pending();
  segment_->note_appended(pcapng::append_section_header(out, "rr-gateway"));
  for (const auto& interface : interfaces_)
    segment_->note_appended(
        pcapng::append_interface_description(out, interface.name, interface.snaplen));
  index_->segment_opened(number, segment_file_name(number), now_ns);
}

FrameLog::Recorded FrameLog::record(const FrameToLog& frame) {
  if (!segment_) throw librr::Error("frame log is closed");
  ++frames_accepted_;
  if (frame.interface_id >= interfaces_.size())
    throw librr::Error(fmt::format("frame for unknown interface {}", frame.interface_id));
  if (segment_frames_ > 0 &&
      segment_->pcapng_size() + frame.captured.size() + 64 > settings_.segment_max_bytes)
    rotate(frame.timestamp_ns);
  IndexedFrame row;
  row.segment = segment_->number();
  row.ordinal = segment_frames_;
  row.pcapng_offset = segment_->pcapng_size();
  row.timestamp_ns = frame.timestamp_ns;
  row.interface = interfaces_[frame.interface_id].name;
  row.wire_length = frame.wire_length;
  row.captured_length = static_cast<uint32_t>(frame.captured.size());
  row.digest = librr::hash256(frame.captured);
  row.direction = std::string(to_string(frame.direction));
  segment_->note_appended(pcapng::append_enhanced_packet(
      segment_->pending(), frame.interface_id, frame.timestamp_ns, frame.captured,
      frame.wire_length, frame.epb_flags, frame.drop_count));
  Recorded recorded{row.segment, row.ordinal, row.digest};
  pending_rows_.push_back(std::move(row));
  ++segment_frames_;
  if (segment_->pending_size() >= settings_.chunk_bytes) flush();
  return recorded;
}

void FrameLog::flush() {
  if (!segment_) return;
  segment_->flush();
  index_->insert(pending_rows_);
  frames_logged_ += pending_rows_.size();
  pending_rows_.clear();
}

bool FrameLog::rotation_due(uint64_t now_ns) const {
  if (!segment_) return false;
  if (segment_->pcapng_size() >= settings_.segment_max_bytes) return true;
  return settings_.segment_max_seconds > 0 &&
         now_ns >= segment_opened_ns_ + settings_.segment_max_seconds * 1'000'000'000ull;
}

void FrameLog::close_segment(uint64_t now_ns) {
  auto& out = segment_->pending();
  for (const auto& stats :
       statistics_ ? statistics_(now_ns) : std::vector<pcapng::InterfaceStatistics>{})
    segment_->note_appended(pcapng::append_interface_statistics(out, stats));
  uint64_t number = segment_->number();
  auto path = segment_->close();
  index_->insert(pending_rows_);
  frames_logged_ += pending_rows_.size();
  pending_rows_.clear();
  index_->segment_closed(number, path.filename().string(), now_ns, segment_frames_,
                         segment_->pcapng_size(), segment_->compressed_bytes_written());
  segment_.reset();
}

void FrameLog::rotate(uint64_t now_ns) {
  close_segment(now_ns);
  open_segment(now_ns);
}

void FrameLog::close(uint64_t now_ns) {
  if (segment_) close_segment(now_ns);
}

void FrameLog::update_limits(uint64_t segment_max_bytes, uint64_t segment_max_seconds) {
  settings_.segment_max_bytes = segment_max_bytes;
  settings_.segment_max_seconds = segment_max_seconds;
}

}  // namespace gateway
