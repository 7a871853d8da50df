// rr-vmm: subcommands register themselves; each ends parsing with its status.
#include <CLI/CLI.hpp>

#include "cli/record_command.h"
#include "cli/run_command.h"
#include "cli/snapshot_command.h"
#if __has_include("probe/probe_cli.h")
#include "probe/probe_cli.h"
#define RR_HAVE_PROBE 1
#endif

int main(int argc, char** argv) {
  CLI::App app{"rr-vmm: a KVM virtual machine monitor that records and replays whole machines"};
  app.require_subcommand(1);
  vmm::cli::add_run_command(app);
  vmm::cli::add_record_command(app);
  vmm::cli::add_replay_command(app);
  vmm::cli::add_snapshot_command(app);
#ifdef RR_HAVE_PROBE
  add_probe_command(app);
#endif
  CLI11_PARSE(app, argc, argv);
  return 0;
}
