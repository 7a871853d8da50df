#pragma once
// `rr-vmm run`: boot a test guest or a Linux kernel on the KVM machine.
#include <CLI/CLI.hpp>
#include <string>

namespace vmm::cli {

struct RunOptions {
  std::string guest;   // test guest name (default "demo" when no kernel is given)
  std::string kernel;  // vmlinux / bzImage / PVH ELF path
  std::string initrd;
  std::string append;
  bool append_given = false;
  std::string memory;  // "256M"; default 128M for test guests, 512M for Linux
  std::string serial_in = "stdin";
  std::string boot_protocol = "auto";
  bool stats = false;
};

// Registers the subcommand; its callback ends parsing by throwing CLI::Success
// or CLI::RuntimeError(status), like `probe`, so main stays generic.
void add_run_command(CLI::App& app);

// Runs the machine; returns the process exit status: the guest's 0xf4 value,
// 0 on reset, 1 when the guest crashed, 2 for bad user input (one line on stderr).
int run_command(const RunOptions& options);

}  // namespace vmm::cli
