#pragma once
// A one-line progress bar for long operations (exporting a log, replaying a
// recording). It draws only when its file descriptor (stderr by default) is
// a terminal, so piped and logged output, and tests, stay clean:
//
//   export: log    [##########----------]  51%  12034/23500 records
//
// update() is cheap enough to call per record: it redraws at most ten times
// a second. The line is erased when the bar finishes or is destroyed.
#include <chrono>
#include <cstdint>
#include <string>

namespace analyzer {

class ProgressBar {
 public:
  // `total` 0 means unknown: the bar shows the count without a percentage.
  ProgressBar(std::string label, uint64_t total, std::string unit, int fd = 2);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }
  void set_total(uint64_t total) { total_ = total; }
  void update(uint64_t done);
  // Erases the line (idempotent).
  void finish();

  // The text drawn for `done` of `total` in `width` columns (no \r); public
  // for tests.
  static std::string render(const std::string& label, uint64_t done, uint64_t total,
                            const std::string& unit, int width);

 private:
  void draw();
  int terminal_width() const;

  std::string label_;
  uint64_t total_;
  std::string unit_;
  int fd_;
  bool enabled_;
  bool drawn_ = false;
  uint64_t done_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace analyzer
