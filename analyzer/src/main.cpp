// rr-analyze: offline analysis of recordings made by rr-vmm (or any VMM on librr).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "commands/at.h"
#include "commands/command.h"
#include "commands/forensics.h"
#include "gdb/gdbserver_command.h"
#include "librr/error.h"
#include "sql/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"rr-analyze: inspect, verify and query whole-machine recordings"};
  app.require_subcommand(1);
  analyzer::CommandAction action;
  analyzer::add_info_command(app, action);
  analyzer::add_verify_command(app, action);
  analyzer::add_gdbserver_command(app, action);
  analyzer::add_at_command(app, action);
  analyzer::add_profile_command(app, action);
  analyzer::add_ps_command(app, action);
  analyzer::add_dmesg_command(app, action);
  analyzer::add_timeline_command(app, action);
  analyzer::add_export_command(app, action);
  analyzer::add_query_command(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : analyzer::kExitUsage;
  }
  try {
    return action();
  } catch (const librr::FormatError& e) {
    // Damaged input (manifest, log header...): a problem of the recording.
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return analyzer::kExitProblem;
  } catch (const librr::Error& e) {
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return analyzer::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return analyzer::kExitUsage;
  }
}
