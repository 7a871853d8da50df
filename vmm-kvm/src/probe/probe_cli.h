#pragma once
// Registers `rr-vmm probe [--json] [--refresh] [--cache-dir DIR]`.
//
// The subcommand's callback runs during parsing and ends it by throwing
// CLI::Success (status 0) or CLI::RuntimeError (status 1), which CLI11_PARSE
// turns into main's return value; main needs no probe-specific code.
#include <CLI/CLI.hpp>
#include <memory>

#include "probe/probe_command.h"

namespace vmm::probe {

inline void add_probe_command(CLI::App& app) {
  auto options = std::make_shared<ProbeCommandOptions>();
  CLI::App* probe = app.add_subcommand(
      "probe", "measure what this host's KVM offers (cached per kernel, KVM module and CPU)");
  probe->add_flag("--json", options->json, "print JSON instead of a table");
  probe->add_flag("--refresh", options->refresh, "measure again even if a cached result matches");
  probe->add_option("--cache-dir", options->cache_dir,
                    "cache directory (default $XDG_CACHE_HOME/rrkvm or ~/.cache/rrkvm)");
  probe->callback([options] {
    const int status = run_probe_command(*options);
    if (status == 0) throw CLI::Success();
    throw CLI::RuntimeError(status);
  });
}

}  // namespace vmm::probe

// The unqualified name the brief asks main.cpp to call.
using vmm::probe::add_probe_command;
