#pragma once
// Forensics commands (docs/forensics.md): ISF profiles and guest OS views
// rebuilt from memory at a position of a recording.
#include "commands/command.h"

namespace analyzer {

void add_profile_command(CLI::App& app, CommandAction& action);
void add_ps_command(CLI::App& app, CommandAction& action);
void add_dmesg_command(CLI::App& app, CommandAction& action);
// timeline.cpp: events found by replaying with breakpoints (timeline/timeline.h).
void add_timeline_command(CLI::App& app, CommandAction& action);

}  // namespace analyzer
