// `rr-analyze gdbserver REC --port N`: serve one gdb session over a replay.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>

#include "gdb/gdb_connection.h"
#include "gdb/gdb_listener.h"
#include "gdb/gdb_registers.h"
#include "gdb/gdb_server.h"
#include "gdb/gdbserver_command.h"
#include "librr/error.h"
#include "travel/time_traveler.h"

namespace analyzer {
namespace {

std::atomic<bool> interrupted{false};
// Write end of the self-pipe: whichever thread takes the signal, the
// server's poll sees the read end become readable.
int interrupt_pipe_write = -1;

void on_interrupt(int) {
  interrupted = true;
  const char byte = 1;
  if (interrupt_pipe_write >= 0) (void)!::write(interrupt_pipe_write, &byte, 1);
}

// SIGINT/SIGTERM set a flag and interrupt blocking accept/read (no
// SA_RESTART), so the server closes the socket and exits normally.
class InterruptGuard {
 public:
  InterruptGuard() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) librr::throw_errno("gdbserver: pipe");
    read_end_ = gdb::UniqueFd(fds[0]);
    write_end_ = gdb::UniqueFd(fds[1]);
    interrupt_pipe_write = write_end_.get();
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    interrupt_pipe_write = -1;
  }
  int fd() const { return read_end_.get(); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  gdb::UniqueFd read_end_, write_end_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

struct GdbServerOptions {
  RecordingOptions recording;
  uint16_t port = 0;
  bool force = false;
  bool trace = false;
};

int run_gdbserver(const GdbServerOptions& options) {
  TravelOptions travel;
  travel.key = options.recording.key();
  travel.force = options.force;
  TimeTraveler traveler(options.recording.recording, travel);

  InterruptGuard guard;
  const auto should_stop = [] { return interrupted.load(); };
  gdb::GdbListener listener(options.port);
  fmt::print("rr-analyze gdbserver: listening on 127.0.0.1:{} (in gdb: target remote :{})\n",
             listener.port(), listener.port());
  std::fflush(stdout);

  auto socket = listener.accept_one(should_stop, guard.fd());
  if (!socket) {
    fmt::print("rr-analyze gdbserver: interrupted before gdb connected\n");
    return kExitOk;
  }
  gdb::GdbServerConnection connection(std::move(*socket), gdb::target_description(), should_stop);
  connection.set_interrupt_fd(guard.fd());
  if (options.trace) connection.set_trace(stderr);
  gdb::GdbServer server(traveler, connection);
  const gdb::GdbServer::SessionEnd end = server.serve();
  if (end == gdb::GdbServer::SessionEnd::kReplayFailed) {
    fmt::print("rr-analyze gdbserver: session ended, {}\n", server.failure());
    return kExitProblem;  // as `rr-analyze at` on a divergence (docs/analyzer.md)
  }
  const char* why = interrupted                                    ? "interrupted"
                    : end == gdb::GdbServer::SessionEnd::kKilled   ? "gdb killed the session"
                    : end == gdb::GdbServer::SessionEnd::kDetached ? "gdb detached"
                                                                   : "gdb disconnected";
  fmt::print("rr-analyze gdbserver: {} at position {}\n", why, traveler.position().to_string());
  return kExitOk;
}

}  // namespace

void add_gdbserver_command(CLI::App& app, CommandAction& action) {
  auto options = std::make_shared<GdbServerOptions>();
  CLI::App* command = app.add_subcommand(
      "gdbserver", "serve the replay to gdb (target remote :PORT), with reverse execution");
  command
      ->add_option("recording", options->recording.recording,
                   "recording directory (made by rr-vmm record)")
      ->required();
  command->add_option("--key", options->recording.key_file,
                      "key file (64 hex digits) for a MAC'd or encrypted recording");
  command->add_option("--port", options->port, "TCP port on 127.0.0.1; 0 picks a free one")
      ->required();
  command->add_flag("--force", options->force,
                    "replay even on another CPU model or device-model version");
  command->add_flag("--trace", options->trace, "log every packet to stderr");
  command->callback([options, &action] { action = [options] { return run_gdbserver(*options); }; });
}

}  // namespace analyzer
