#include "probe/isolated_item.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kvm/kvm.h"

namespace vmm::probe {
namespace {

nlohmann::json unknown(const std::string& error) {
  return {{"status", "unknown"}, {"error", error}};
}

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

[[noreturn]] void child_main(int out_fd, const std::function<nlohmann::json()>& measure) {
  nlohmann::json result;
  try {
    result = measure();
    if (!result.contains("status")) result["status"] = "ok";
  } catch (const std::exception& error) {
    result = unknown(error.what());
  } catch (...) {
    result = unknown("unknown exception");
  }
  write_all(out_fd, result.dump());
  ::_exit(0);  // no atexit handlers: the parent's state (e.g. a test runner) is not ours
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status))
    return std::string("probe child died of signal ") + strsignal(WTERMSIG(status));
  if (WIFEXITED(status))
    return "probe child exited with status " + std::to_string(WEXITSTATUS(status));
  return "probe child ended abnormally";
}

}  // namespace

nlohmann::json run_isolated(const std::string& item_name,
                            const std::function<nlohmann::json()>& measure,
                            std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  auto finish = [&](nlohmann::json result) {
    result["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  };
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return finish(unknown(item_name + ": pipe: " + std::strerror(errno)));
  kvm::Fd read_end(pipe_fds[0]);
  kvm::Fd write_end(pipe_fds[1]);

  const pid_t child = ::fork();
  if (child < 0) return finish(unknown(item_name + ": fork: " + std::strerror(errno)));
  if (child == 0) {
    ::close(read_end.release());
    child_main(write_end.get(), measure);
  }
  write_end = kvm::Fd();

  std::string output;
  bool timed_out = false;
  for (;;) {
    const auto left = timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start);
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd poll_fd{read_end.get(), POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is done
    output.append(buffer, static_cast<size_t>(n));
  }
  if (timed_out) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return finish(unknown(item_name + ": timed out after " + std::to_string(timeout.count()) +
                          " ms (child killed)"));
  if (output.empty()) return finish(unknown(item_name + ": " + describe_wait_status(status)));
  try {
    return finish(nlohmann::json::parse(output));
  } catch (const nlohmann::json::exception& error) {
    return finish(unknown(item_name + ": unreadable child result: " + error.what()));
  }
}

}  // namespace vmm::probe
