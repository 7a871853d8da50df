#pragma once
// The SQL subcommands (docs/sql.md). Exit codes, for both:
//   0  success
//   1  the recording is missing or damaged (the message names the file,
//      chunk and offset), or its replay could not be set up because the
//      snapshot is damaged
//   2  usage error: bad arguments, bad key, SQL that SQLite rejects (its
//      own message is printed), an output file that cannot be written
#include "commands/command.h"

namespace analyzer {

void add_export_command(CLI::App& app, CommandAction& action);
void add_query_command(CLI::App& app, CommandAction& action);

}  // namespace analyzer
