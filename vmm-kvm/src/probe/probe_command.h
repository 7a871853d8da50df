#pragma once
// The body of `rr-vmm probe`, kept out of probe_cli.h so that only main.cpp
// needs CLI11.
#include <string>

namespace vmm::probe {

struct ProbeCommandOptions {
  bool json = false;
  bool refresh = false;
  std::string cache_dir;  // empty: $XDG_CACHE_HOME/rrkvm or ~/.cache/rrkvm
};

// Prints the table or JSON to stdout; returns the process exit status.
int run_probe_command(const ProbeCommandOptions& options);

}  // namespace vmm::probe
