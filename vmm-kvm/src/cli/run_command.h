#pragma once
// `rr-vmm run`: boot a test guest or a Linux kernel on the KVM machine.
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "boot/boot.h"
#include "machine/machine.h"

namespace vmm::cli {

struct RunOptions {
  std::string guest;         // test guest name (default "demo" when no kernel is given)
  std::string kernel;        // vmlinux / bzImage / PVH ELF path
  bool linux_guest = false;  // --linux: the cached guest from examples/linux-guest
  std::string initrd;
  std::string append;
  bool append_given = false;
  std::string memory;  // "256M"; default 128M for test guests, 512M for Linux
  std::string serial_in = "stdin";
  std::string boot_protocol = "auto";
  bool stats = false;
  std::string net;           // virtio-net backend spec (unix:PATH, tap:NAME, none); "" = no NIC
  std::string disk;          // virtio-blk raw image; "" = no disk
  std::string disk_overlay;  // copy-on-write overlay file; "" = in memory

  // Snapshots and clones (`run` only; cli/snapshot_run.h).
  std::string clock = "host";            // host: real time; virtual: repeatable guest time
  double preempt_ms = 0;                 // --clock virtual: stop a guest this long without exits
  std::vector<std::string> snapshot_at;  // time:DURATION, serial:TEXT, signal
  std::string snapshot_out;              // "{n}" numbers successive snapshots
  bool snapshot_exit = false;            // end the run after the first snapshot
  std::string key_file;                  // encrypt (--snapshot-out) / decrypt (--restore)
  std::string restore;                   // snapshot to continue from
  unsigned clones = 0;                   // --restore: N independent machines
  std::string serial_out_dir;            // --clone: DIR/clone-K.serial (else prefixed stdout)
};

// A machine built and booted from RunOptions (shared by run, record, snapshot).
struct PreparedRun {
  std::unique_ptr<SerialInput> input;          // the terminal/file/socket input, if any
  std::unique_ptr<SerialInput> wrapped_input;  // what the machine reads (record wraps `input`)
  std::unique_ptr<Machine> machine;
  boot::BootInfo boot_info{};
  std::string what;
  std::string kernel_path, cmdline, kernel_digest;
};
using SerialInputWrapper = std::function<std::unique_ptr<SerialInput>(SerialInput&)>;
// Throws librr::Error naming bad input (missing guest or kernel, bad sizes).
PreparedRun prepare_machine(const RunOptions& options, SerialInputWrapper wrap_input = {},
                            const std::function<void(MachineConfig&)>& adjust = {});

// SIGINT/SIGTERM stop `machine` cleanly while this object lives.
class StopOnSignals {
 public:
  explicit StopOnSignals(Machine& machine);
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;
};

// The process exit status for how the machine ended: the guest's exit-port
// value, 0 after a reset, 130 when stopped, 1 (with the reason on stderr) otherwise.
int exit_status_for(const RunResult& result);

// The options that say which guest to boot and how (run, record).
// Returns --append, whose count tells an empty command line from none.
CLI::Option* add_guest_options(CLI::App& command, RunOptions& options);

// Registers the subcommand; its callback ends parsing by throwing CLI::Success
// or CLI::RuntimeError(status), like `probe`, so main stays generic.
void add_run_command(CLI::App& app);
// --clock, --snapshot-at/-out, --restore, --clone, ... (run only).
void add_snapshot_options(CLI::App& run, RunOptions& options);

// Runs the machine; returns the process exit status: the guest's 0xf4 value,
// 0 on reset, 1 when the guest crashed, 2 for bad user input (one line on stderr).
int run_command(const RunOptions& options);

}  // namespace vmm::cli
