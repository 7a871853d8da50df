#pragma once
// rr-analyze subcommands. Each registers itself on the CLI11 app and returns
// a process exit code (documented in docs/analyzer.md):
//   0  success / recording intact
//   1  the recording has a problem (verify), or the command's subject failed
//   2  usage error: bad arguments, missing or unreadable recording, bad key
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "librr/crypto.h"

namespace analyzer {

enum ExitCode { kExitOk = 0, kExitProblem = 1, kExitUsage = 2 };

// Options every command that reads a recording takes.
struct RecordingOptions {
  std::string recording;
  std::string key_file;
  bool json = false;

  void add_to(CLI::App& command);
  // The key from --key, or nullopt. Throws librr::Error naming the file.
  std::optional<librr::Key> key() const;
};

// The action a parsed subcommand runs; set by the add_*_command functions.
using CommandAction = std::function<int()>;

void add_info_command(CLI::App& app, CommandAction& action);
void add_verify_command(CLI::App& app, CommandAction& action);

}  // namespace analyzer
