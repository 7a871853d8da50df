#pragma once
// `rr-analyze gdbserver REC --port N`: a GDB remote-protocol server over a
// replay of the recording (docs/gdb.md).
#include "commands/command.h"

namespace analyzer {

void add_gdbserver_command(CLI::App& app, CommandAction& action);

}  // namespace analyzer
