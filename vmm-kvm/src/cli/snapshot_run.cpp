#include "cli/snapshot_run.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli/snapshot_session.h"
#include "snapshot/machine_snapshot.h"
#include "snapshot/virtual_time_runner.h"

namespace vmm::cli {
namespace {

namespace fs = std::filesystem;

struct SnapshotPlan {
  std::vector<SnapshotTrigger> triggers;
  std::string out;  // path; "{n}" is replaced by the snapshot's number
  std::optional<librr::Key> key;
  bool exit_after = false;
};

std::string snapshot_path(const std::string& pattern, unsigned number) {
  std::string path = pattern;
  if (const size_t at = path.find("{n}"); at != std::string::npos)
    path.replace(at, 3, std::to_string(number));
  return path;
}

SnapshotPlan make_plan(const RunOptions& options) {
  SnapshotPlan plan;
  for (const std::string& spec : options.snapshot_at)
    plan.triggers.push_back(parse_snapshot_trigger(spec));
  plan.out = options.snapshot_out;
  plan.exit_after = options.snapshot_exit;
  if (!options.key_file.empty()) plan.key = librr::Key::load_file(options.key_file);
  if (plan.out.empty() && (!plan.triggers.empty() || plan.exit_after))
    throw librr::Error("--snapshot-at and --snapshot-exit need --snapshot-out FILE");
  if (!plan.out.empty() && fs::exists(snapshot_path(plan.out, 1)))
    throw librr::Error("--snapshot-out " + snapshot_path(plan.out, 1) +
                       ": file exists (snapshots are never overwritten)");
  return plan;
}

std::vector<uint64_t> trigger_times(const SnapshotPlan& plan) {
  std::vector<uint64_t> times;
  for (const SnapshotTrigger& trigger : plan.triggers)
    if (trigger.kind == SnapshotTrigger::Kind::kGuestTime) times.push_back(trigger.guest_ns);
  std::sort(times.begin(), times.end());
  return times;
}

void print_stats(Machine& machine, const VirtualTimeRunner* runner) {
  const MachineStats& s = machine.stats();
  // The virtual-time loop stops the vCPU only to preempt it; Machine::run()
  // counts its own asynchronous stops.
  const uint64_t async_stops = runner ? runner->preemptions() : s.asynchronous_stops;
  std::fprintf(
      stderr,
      "rr-vmm: guest time %.3f ms, %llu landmarks (%llu PIO, %llu MMIO, %llu HLT), "
      "%llu async stops, %llu interrupts\n",
      static_cast<double>(machine.clock().now_ns()) / 1e6,
      static_cast<unsigned long long>(s.landmarks), static_cast<unsigned long long>(s.pio_exits),
      static_cast<unsigned long long>(s.mmio_exits), static_cast<unsigned long long>(s.halts),
      static_cast<unsigned long long>(async_stops),
      static_cast<unsigned long long>(s.interrupts_delivered));
  if (runner)
    std::fprintf(stderr, "rr-vmm: virtual clock: %llu idle skips, %llu preemptions%s\n",
                 static_cast<unsigned long long>(runner->idle_skips()),
                 static_cast<unsigned long long>(runner->preemptions()),
                 runner->preemptions() ? " (this run is not repeatable)" : "");
}

// Runs the session's machine to its end, writing a snapshot whenever a
// trigger fires. Snapshots are taken between two exits, where the vCPU is
// settled; the run then continues exactly as if nothing had happened.
int drive(SnapshotSession& session, const SnapshotPlan& plan, bool stats) {
  Machine& machine = *session.machine;
  // SIGUSR1 keeps its default meaning unless snapshots are asked for.
  std::optional<SnapshotRequests> requests;
  if (!plan.out.empty()) requests.emplace(machine);
  session.requests = requests ? &*requests : nullptr;
  struct Detach {
    SnapshotSession& session;
    ~Detach() { session.requests = nullptr; }
  } detach{session};
  StopOnSignals stop_on_signals(machine);

  std::vector<uint64_t> times = trigger_times(plan);
  // Triggers already in the past (a restored machine) never fire.
  std::erase_if(times, [&](uint64_t t) { return t < machine.clock().now_ns(); });
  std::optional<VirtualTimeRunner> runner;
  std::optional<HostTimeTriggers> host_times;
  if (session.virtual_clock)
    runner.emplace(machine, *session.virtual_clock, session.config.clock, session.input.get());
  else if (!plan.out.empty())
    host_times.emplace(machine, *requests, times);

  unsigned written = 0;
  for (;;) {
    RunResult result;
    try {
      if (runner) {
        result = runner->run(times.empty() ? VirtualTimeRunner::kNoStopTime : times.front());
      } else {
        result = machine.run();
      }
    } catch (const std::exception& e) {
      result = RunResult{RunResult::Kind::kError, 0, e.what()};
    }
    bool snapshot_due = false;
    if (result.kind == RunResult::Kind::kStopped) {
      snapshot_due = requests && requests->take();
      if (runner)
        while (!times.empty() && machine.clock().now_ns() >= times.front()) {
          times.erase(times.begin());
          snapshot_due = true;
        }
    }
    if (!snapshot_due || plan.out.empty()) {
      if (stats) print_stats(machine, runner ? &*runner : nullptr);
      return exit_status_for(result);
    }
    const std::string path = snapshot_path(plan.out, ++written);
    const uint64_t guest_ns = machine.clock().now_ns();
    try {
      machine.settle_vcpu();
      machine.kicker().acknowledge(&machine.run_state());  // the trigger's kick is consumed
      const librr::Digest digest = save_machine_snapshot(machine, path, plan.key, &session.config);
      // Host time: the guest does not see the time spent writing.
      if (!runner) machine.clock().resume_at(guest_ns);
      std::fprintf(stderr, "rr-vmm: snapshot %s written at guest time %.3f ms (blake2b %s)\n",
                   path.c_str(), static_cast<double>(guest_ns) / 1e6,
                   librr::to_hex(digest).substr(0, 16).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rr-vmm: cannot write snapshot %s: %s\n", path.c_str(), e.what());
      return 1;
    }
    if (plan.exit_after) {
      if (stats) print_stats(machine, runner ? &*runner : nullptr);
      return 0;
    }
  }
}

// One clone: a child process with its own machine, RAM, console and overlay.
[[noreturn]] void run_clone(unsigned index, const RunOptions& options, const SnapshotConfig& config,
                            const SnapshotPlan& plan) {
  int status = 2;
  try {
    ConsoleTarget console;
    std::string overlay;
    virtio::UniqueFd file;
    if (!options.serial_out_dir.empty()) {
      const fs::path base = fs::path(options.serial_out_dir) / fmt::format("clone-{}", index);
      file.reset(::open((base.string() + ".serial").c_str(),
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!file) librr::throw_errno(base.string() + ".serial: create");
      console.fd = file.get();
      if (!config.disk_image.empty()) overlay = base.string() + ".overlay";
    } else {
      console.prefix = fmt::format("[clone {}] ", index);
    }
    RunOptions clone_options = options;
    clone_options.serial_in = "none";  // clones would fight over one input
    auto session =
        restore_session(options.restore, plan.key, config, clone_options, {}, console, overlay);
    status = drive(*session, SnapshotPlan{}, options.stats);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-vmm: clone %u: %s\n", index, e.what());
  }
  std::fflush(nullptr);
  _exit(status);
}

int run_clones(const RunOptions& options, const SnapshotConfig& config, const SnapshotPlan& plan) {
  if (!options.serial_out_dir.empty()) fs::create_directories(options.serial_out_dir);
  std::fflush(nullptr);
  std::vector<pid_t> children;
  for (unsigned i = 1; i <= options.clones; ++i) {
    const pid_t pid = fork();
    if (pid < 0) librr::throw_errno("fork for clone " + std::to_string(i));
    if (pid == 0) run_clone(i, options, config, plan);
    children.push_back(pid);
  }
  int first_failure = 0;
  for (unsigned i = 0; i < children.size(); ++i) {
    int wait_status = 0;
    while (waitpid(children[i], &wait_status, 0) < 0 && errno == EINTR) {
    }
    std::string how;
    int status = 0;
    if (WIFEXITED(wait_status)) {
      status = WEXITSTATUS(wait_status);
      how = fmt::format("exit status {}", status);
    } else {
      status = 128 + WTERMSIG(wait_status);
      how = fmt::format("killed by signal {}", WTERMSIG(wait_status));
    }
    std::string where;
    if (!options.serial_out_dir.empty())
      where = fmt::format(
          ", console in {}",
          (fs::path(options.serial_out_dir) / fmt::format("clone-{}.serial", i + 1)).string());
    std::fprintf(stderr, "rr-vmm: clone %u: %s%s\n", i + 1, how.c_str(), where.c_str());
    if (first_failure == 0) first_failure = status;
  }
  return first_failure;
}

}  // namespace

bool wants_snapshot_run(const RunOptions& options) {
  return !options.restore.empty() || !options.snapshot_out.empty() ||
         !options.snapshot_at.empty() || options.clock != "host" || options.clones > 0 ||
         !options.serial_out_dir.empty() || options.snapshot_exit;
}

int run_with_snapshots(const RunOptions& options) {
  SnapshotPlan plan;
  std::unique_ptr<SnapshotSession> session;
  try {
    plan = make_plan(options);
    if (options.restore.empty()) {
      if (options.clones > 0 || !options.serial_out_dir.empty())
        throw librr::Error("--clone and --serial-out-dir need --restore FILE");
      session = boot_session(options, plan.triggers);
    } else {
      if (!options.guest.empty() || !options.kernel.empty() || options.linux_guest)
        throw librr::Error(
            "--restore replaces --guest/--kernel/--linux: the snapshot holds the guest");
      if (options.clones > 0 && (!plan.out.empty() || !options.disk_overlay.empty()))
        throw librr::Error("--clone runs disposable machines: no --snapshot-out or --disk-overlay");
      if (!options.serial_out_dir.empty() && options.clones == 0)
        throw librr::Error("--serial-out-dir needs --clone N");
      const SnapshotConfig config = check_snapshot(options.restore, plan.key, options);
      if (options.clones > 0) return run_clones(options, config, plan);
      session = restore_session(options.restore, plan.key, config, options, plan.triggers,
                                ConsoleTarget{}, options.disk_overlay);
    }
  } catch (const std::exception& e) {
    // Bad input, a bad snapshot or an unusable host: one line naming the cause.
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  return drive(*session, plan, options.stats);
}

}  // namespace vmm::cli
