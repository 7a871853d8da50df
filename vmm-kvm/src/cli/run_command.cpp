#include "cli/run_command.h"

#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "boot/boot.h"
#include "cli/guest_lookup.h"
#include "cli/snapshot_run.h"
#include "librr/crypto.h"
#include "librr/error.h"
#include "machine/machine.h"

namespace vmm::cli {
namespace {

// Debian 6.1 tinyconfig kernels on kvm_pvm (see the host notes): no local
// APIC, no TSC/XSAVE/... so that the kernel never executes what this host
// cannot emulate.
constexpr const char* kDefaultLinuxCmdline =
    "console=ttyS0 nolapic noapic nokaslr panic=-1 noxsave "
    "clearcpuid=4,59,158,306,534,308,295,288,145,298,151,150,197,291,296,311,312";

Machine* g_running_machine = nullptr;

void stop_on_signal(int) {
  if (g_running_machine) g_running_machine->request_stop();  // eventfd write + pthread_kill
}

boot::Protocol parse_protocol(const std::string& text) {
  if (text == "auto") return boot::Protocol::kAuto;
  if (text == "pvh") return boot::Protocol::kPvh;
  if (text == "linux64") return boot::Protocol::kLinux64;
  throw librr::Error("--boot-protocol " + text + ": expected auto, pvh or linux64");
}

}  // namespace

// --linux fills in kernel, initrd and (unless given) the command line.
RunOptions resolve_linux_guest(RunOptions options) {
  if (!options.linux_guest) return options;
  if (!options.kernel.empty() || !options.guest.empty())
    throw librr::Error("--linux replaces --kernel and --guest; give only one");
  const std::string dir = linux_guest_dir();
  options.kernel = dir + "/vmlinux";
  // Uncompressed: the guest would decompress at emulated CPL0 speed.
  options.initrd = dir + "/initramfs.cpio";
  if (!options.append_given) {
    const std::vector<uint8_t> bytes = boot::read_file(dir + "/cmdline.txt");
    std::string cmdline(bytes.begin(), bytes.end());
    while (!cmdline.empty() && (cmdline.back() == '\n' || cmdline.back() == ' '))
      cmdline.pop_back();
    options.append = cmdline;
    options.append_given = true;
  }
  return options;
}

PreparedRun prepare_machine(const RunOptions& given, SerialInputWrapper wrap_input,
                            const std::function<void(MachineConfig&)>& adjust) {
  const RunOptions options = resolve_linux_guest(given);
  PreparedRun prepared;
  boot::BootRequest request;
  const bool is_linux = !options.kernel.empty();
  if (is_linux && !options.guest.empty())
    throw librr::Error("give either --guest or --kernel, not both");
  if (is_linux) {
    request.kernel_path = options.kernel;
    request.cmdline = options.append_given ? options.append : kDefaultLinuxCmdline;
    if (!options.initrd.empty()) request.initrd = boot::read_file(options.initrd);
  } else {
    const std::string name = options.guest.empty() ? "demo" : options.guest;
    const auto path = find_guest(name);
    if (!path) {
      std::string searched;
      for (const auto& dir : guest_search_path()) searched += (searched.empty() ? "" : ", ") + dir;
      throw librr::Error("guest '" + name + "' not found (searched " + searched +
                         "; build target test-guests or set RR_GUEST_DIR)");
    }
    if (!options.initrd.empty()) throw librr::Error("--initrd needs --kernel");
    request.kernel_path = *path;
    request.cmdline = options.append;
  }
  request.kernel = boot::read_file(request.kernel_path);
  request.protocol = parse_protocol(options.boot_protocol);
  prepared.what = request.kernel_path;

  MachineConfig config;
  config.ram_bytes =
      parse_memory_size(options.memory.empty() ? (is_linux ? "512M" : "128M") : options.memory);
  prepared.input = open_serial_input(options.serial_in);
  config.serial_input = prepared.input.get();
  config.net_backend = options.net;
  if (!options.disk_overlay.empty() && options.disk.empty())
    throw librr::Error("--disk-overlay needs --disk");
  config.disk_image = options.disk;
  config.disk_overlay = options.disk_overlay;
  if (wrap_input && prepared.input) {
    prepared.wrapped_input = wrap_input(*prepared.input);
    config.serial_input = prepared.wrapped_input.get();
  }
  if (adjust) adjust(config);
  prepared.machine = std::make_unique<Machine>(config);
  // The guest finds its virtio devices on its command line.
  const std::string devices = prepared.machine->virtio_cmdline();
  request.cmdline += request.cmdline.empty() && !devices.empty() ? devices.substr(1) : devices;
  prepared.kernel_path = request.kernel_path;
  prepared.cmdline = request.cmdline;
  prepared.kernel_digest = librr::to_hex(librr::hash256(request.kernel));
  prepared.boot_info =
      boot::load_kernel(prepared.machine->vcpu(), prepared.machine->memory(), request);
  return prepared;
}

int run_command(const RunOptions& options) {
  if (wants_snapshot_run(options)) return run_with_snapshots(options);
  PreparedRun prepared;
  try {
    prepared = prepare_machine(options);
  } catch (const std::exception& e) {
    // Bad user input or an unusable host: one line naming the cause.
    std::fprintf(stderr, "rr-vmm: %s\n", e.what());
    return 2;
  }
  Machine& machine = *prepared.machine;
  StopOnSignals stop_on_signals(machine);

  const auto started = std::chrono::steady_clock::now();
  RunResult result;
  try {
    result = machine.run();
  } catch (const std::exception& e) {
    result = RunResult{RunResult::Kind::kError, 0, e.what()};
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  if (options.stats) {
    const MachineStats& s = machine.stats();
    std::fprintf(stderr,
                 "rr-vmm: %.3f s, %llu landmarks (%llu PIO, %llu MMIO, %llu HLT), %llu async "
                 "stops, %llu interrupts; %.3f s inside %llu KVM_RUN calls\n",
                 seconds, static_cast<unsigned long long>(s.landmarks),
                 static_cast<unsigned long long>(s.pio_exits),
                 static_cast<unsigned long long>(s.mmio_exits),
                 static_cast<unsigned long long>(s.halts),
                 static_cast<unsigned long long>(s.asynchronous_stops),
                 static_cast<unsigned long long>(s.interrupts_delivered),
                 static_cast<double>(machine.vcpu().run_ns()) / 1e9,
                 static_cast<unsigned long long>(machine.vcpu().run_calls()));
  }
  return exit_status_for(result);
}

StopOnSignals::StopOnSignals(Machine& machine) {
  g_running_machine = &machine;
  struct sigaction action {};
  action.sa_handler = stop_on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

StopOnSignals::~StopOnSignals() { g_running_machine = nullptr; }

int exit_status_for(const RunResult& result) {
  switch (result.kind) {
    case RunResult::Kind::kExitPort:
      return result.exit_status;
    case RunResult::Kind::kReset:
      return 0;
    case RunResult::Kind::kStopped:
      std::fprintf(stderr, "rr-vmm: interrupted, %s\n", result.message.c_str());
      return 130;
    default:
      std::fprintf(stderr, "rr-vmm: %s\n", result.message.c_str());
      return 1;
  }
}

CLI::Option* add_guest_options(CLI::App& command, RunOptions& options) {
  command.add_option("--guest", options.guest, "test guest NAME (found in $RR_GUEST_DIR, ...)");
  command.add_option("--kernel", options.kernel, "kernel image: vmlinux, bzImage or PVH ELF");
  command.add_flag("--linux", options.linux_guest,
                   "boot the replay-friendly Linux guest of examples/linux-guest (built and "
                   "cached on first use)");
  command.add_option("--initrd", options.initrd, "initramfs for --kernel");
  auto* append = command.add_option("--append", options.append, "kernel command line");
  command.add_option("--mem", options.memory,
                     "guest RAM, e.g. 256M (default 128M for test guests, 512M for Linux)");
  command
      .add_option("--serial-in", options.serial_in, "COM1 input: stdin, FILE, unix:PATH or none")
      ->default_str("stdin");
  command
      .add_option("--boot-protocol", options.boot_protocol,
                  "auto (PVH when the ELF note exists), pvh or linux64")
      ->default_str("auto");
  command.add_flag("--stats", options.stats, "print exit and interrupt counts on stderr");
  command.add_option("--net", options.net,
                     "virtio-net backend: unix:PATH, tap:NAME, fd:N or none (default: no NIC)");
  command.add_option("--disk", options.disk, "virtio-blk raw disk IMAGE (opened read-only)");
  command.add_option("--disk-overlay", options.disk_overlay,
                     "file for the disk's writes (default: kept in memory)");
  return append;
}

void add_snapshot_options(CLI::App& run, RunOptions& options) {
  const char* group = "Snapshots and clones";
  run.add_option("--clock", options.clock,
                 "guest time: host (real time) or virtual (advances per exit and jumps over "
                 "idle time: repeatable runs and exact snapshots)")
      ->default_str("host")
      ->group(group);
  run.add_option("--preempt-ms", options.preempt_ms,
                 "--clock virtual: stop a guest that runs this long (host time) without an exit "
                 "and deliver its timer there (needed by guests that spin at CPL3; makes the run "
                 "not repeatable); 0 = never")
      ->group(group);
  run.add_option("--snapshot-at", options.snapshot_at,
                 "when to snapshot: time:DURATION (guest time since boot, e.g. 250ms), "
                 "serial:TEXT (after the guest prints TEXT) or signal (SIGUSR1); repeatable")
      ->group(group);
  run.add_option("--snapshot-out", options.snapshot_out,
                 "snapshot FILE to write ({n} numbers successive ones); SIGUSR1 also writes one")
      ->group(group);
  run.add_flag("--snapshot-exit", options.snapshot_exit, "end the run after the first snapshot")
      ->group(group);
  run.add_option("--key", options.key_file,
                 "key file: encrypt the snapshots written, decrypt the one restored")
      ->group(group);
  run.add_option("--restore", options.restore,
                 "continue the machine saved in snapshot FILE instead of booting a guest")
      ->group(group);
  run.add_option("--clone", options.clones,
                 "with --restore: start N independent machines from the snapshot, each with its "
                 "own RAM, console and disk overlay; report each exit status")
      ->group(group);
  run.add_option("--serial-out-dir", options.serial_out_dir,
                 "with --clone: write clone K's console to DIR/clone-K.serial (and its disk "
                 "overlay to DIR/clone-K.overlay) instead of prefixed lines on stdout")
      ->group(group);
}

void add_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* run = app.add_subcommand("run", "boot a guest (the demo test guest by default)");
  CLI::Option* append = add_guest_options(*run, *options);
  add_snapshot_options(*run, *options);
  run->callback([options, append] {
    options->append_given = append->count() > 0;
    const int status = run_command(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::cli
