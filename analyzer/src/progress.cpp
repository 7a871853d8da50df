#include "progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

namespace analyzer {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

void write_all(int fd, const std::string& text) {
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n <= 0) return;  // a progress bar never fails the work it reports on
    written += static_cast<size_t>(n);
  }
}

}  // namespace

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit, int fd)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      fd_(fd),
      enabled_(isatty(fd) == 1) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::render(const std::string& label, uint64_t done, uint64_t total,
                                const std::string& unit, int width) {
  if (total == 0) return fmt::format("{}  {} {}", label, done, unit);
  done = std::min(done, total);
  const std::string counts = fmt::format("{:>3}%  {}/{} {}", done * 100 / total, done, total, unit);
  // label + " [" + bar + "]  " + counts must fit in width.
  const int bar_width =
      std::clamp(width - static_cast<int>(label.size() + counts.size()) - 5, 0, 40);
  const int filled =
      static_cast<int>(static_cast<double>(done) / static_cast<double>(total) * bar_width);
  return fmt::format("{} [{}{}]  {}", label, std::string(static_cast<size_t>(filled), '#'),
                     std::string(static_cast<size_t>(bar_width - filled), '-'), counts);
}

void ProgressBar::update(uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  draw();
}

int ProgressBar::terminal_width() const {
  winsize size{};
  if (ioctl(fd_, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

void ProgressBar::draw() {
  const int width = terminal_width();
  std::string line = render(label_, done_, total_, unit_, width - 1);
  if (static_cast<int>(line.size()) >= width) line.resize(static_cast<size_t>(width - 1));
  // \r and erase-to-end-of-line: a shorter line leaves no stale characters.
  write_all(fd_, "\r" + line + "\x1b[K");
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!enabled_ || !drawn_) return;
  write_all(fd_, "\r\x1b[K");
  drawn_ = false;
}

}  // namespace analyzer
