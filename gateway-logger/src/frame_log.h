#pragma once
// The gateway's log: pcapng segments (rotated by size and age, compressed with
// zstd) plus the SQLite index of every frame written. Knows nothing of
// sockets: the daemon feeds it frames, tests feed it synthetic ones.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "classifier.h"
#include "frame_index.h"
#include "pcapng.h"
#include "segment_file.h"

namespace gateway {

struct FrameLogSettings {
  std::filesystem::path directory;
  uint64_t segment_max_bytes = 64ull << 20;  // uncompressed pcapng bytes
  uint64_t segment_max_seconds = 3600;       // 0: no time-based rotation
  int compression_level = 3;
  size_t chunk_bytes = 1 << 20;  // pending pcapng bytes compressed and written at once
};

struct LoggedInterface {
  std::string name;
  uint32_t snaplen = 0;
};

struct FrameToLog {
  uint32_t interface_id = 0;  // index into the interface list
  uint64_t timestamp_ns = 0;
  std::span<const uint8_t> captured;
  uint32_t wire_length = 0;
  uint32_t epb_flags = 0;
  uint64_t drop_count = 0;  // frames the kernel dropped on this interface since the last one
  Direction direction = Direction::kIncoming;
};

class FrameLog {
 public:
  // Supplies the interface statistics written as ISBs when a segment closes.
  using StatisticsSource = std::function<std::vector<pcapng::InterfaceStatistics>(uint64_t now_ns)>;

  FrameLog(FrameLogSettings settings, std::vector<LoggedInterface> interfaces,
           StatisticsSource statistics, uint64_t now_ns);
  ~FrameLog();
  FrameLog(const FrameLog&) = delete;
  FrameLog& operator=(const FrameLog&) = delete;

  struct Recorded {
    uint64_t segment = 0;
    uint64_t ordinal = 0;
    librr::Digest digest{};
  };
  // Appends one frame (rotating first if the segment is full).
  Recorded record(const FrameToLog& frame);
  // Writes buffered frames to the segment, then their index rows.
  void flush();
  bool rotation_due(uint64_t now_ns) const;
  // Closes the current segment and opens the next one.
  void rotate(uint64_t now_ns);
  // Closes the current segment; the log cannot be used afterwards.
  void close(uint64_t now_ns);
  void update_limits(uint64_t segment_max_bytes, uint64_t segment_max_seconds);

  uint64_t current_segment() const { return segment_ ? segment_->number() : 0; }
  uint64_t frames_logged() const { return frames_logged_; }
  // Frames given to record() that are not (yet) durably in a segment and the
  // index: after a WriteError, the frames that were lost.
  uint64_t frames_unwritten() const { return frames_accepted_ - frames_logged_; }
  FrameIndex& index() { return *index_; }

 private:
  void open_segment(uint64_t now_ns);
  void close_segment(uint64_t now_ns);

  FrameLogSettings settings_;
  std::vector<LoggedInterface> interfaces_;
  StatisticsSource statistics_;
  std::unique_ptr<FrameIndex> index_;
  std::unique_ptr<SegmentFile> segment_;
  uint64_t segment_opened_ns_ = 0;
  uint64_t segment_frames_ = 0;
  std::vector<IndexedFrame> pending_rows_;
  uint64_t frames_logged_ = 0;
  uint64_t frames_accepted_ = 0;
};

}  // namespace gateway
