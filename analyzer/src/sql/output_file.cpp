#include "sql/output_file.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <system_error>

#include "librr/error.h"

namespace analyzer::sql {
namespace {

constexpr std::array kCleanupSignals = {SIGINT, SIGTERM, SIGHUP};

// The temporary file to remove if a signal ends the process; a plain buffer
// because the handler may only make async-signal-safe calls (unlink).
char g_pending_temporary[PATH_MAX];
volatile sig_atomic_t g_pending = 0;
std::array<struct sigaction, kCleanupSignals.size()> g_previous_actions{};

extern "C" void remove_temporary_and_die(int signal_number) {
  if (g_pending) unlink(g_pending_temporary);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void install_cleanup(const std::filesystem::path& temporary) {
  const std::string& text = temporary.native();
  if (text.size() >= sizeof g_pending_temporary) return;  // no cleanup, but no overflow either
  std::memcpy(g_pending_temporary, text.c_str(), text.size() + 1);
  g_pending = 1;
  struct sigaction action {};
  action.sa_handler = remove_temporary_and_die;
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < kCleanupSignals.size(); ++i)
    sigaction(kCleanupSignals[i], &action, &g_previous_actions[i]);
}

void remove_cleanup() {
  if (!g_pending) return;
  for (size_t i = 0; i < kCleanupSignals.size(); ++i)
    sigaction(kCleanupSignals[i], &g_previous_actions[i], nullptr);
  g_pending = 0;
}

void fsync_path(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) librr::throw_errno("open " + path.string() + " to sync it");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) librr::throw_errno("fsync " + path.string());
}

}  // namespace

AtomicOutputFile::AtomicOutputFile(std::filesystem::path final_path)
    : final_(std::move(final_path)), temporary_(final_.string() + ".tmp") {
  // A stale temporary left by a killed export is garbage: start afresh.
  std::filesystem::remove(temporary_);
  install_cleanup(temporary_);
}

AtomicOutputFile::~AtomicOutputFile() {
  remove_cleanup();
  if (!committed_) {
    std::error_code ignored;
    std::filesystem::remove(temporary_, ignored);
  }
}

void AtomicOutputFile::commit() {
  fsync_path(temporary_, O_RDONLY);
  if (::rename(temporary_.c_str(), final_.c_str()) != 0)
    librr::throw_errno("rename " + temporary_.string() + " to " + final_.string());
  committed_ = true;
  remove_cleanup();
  const std::filesystem::path directory =
      final_.has_parent_path() ? final_.parent_path() : std::filesystem::path(".");
  fsync_path(directory, O_RDONLY | O_DIRECTORY);
}

}  // namespace analyzer::sql
