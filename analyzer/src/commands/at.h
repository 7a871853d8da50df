#pragma once
// `rr-analyze at REC POS regs|mem|disasm`: the machine's state at any
// position of a recording, reached by replaying it (travel/time_traveler.h).
#include <CLI/CLI.hpp>

#include "commands/command.h"

namespace analyzer {

void add_at_command(CLI::App& app, CommandAction& action);

}  // namespace analyzer
