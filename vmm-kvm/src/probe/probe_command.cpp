#include "probe/probe_command.h"

#include <cstdio>

#include "probe/probe_json.h"

namespace vmm::probe {

int run_probe_command(const ProbeCommandOptions& command) {
  ProbeOptions options;
  options.refresh = command.refresh;
  options.cache_dir = command.cache_dir;
  try {
    const ProbeResult result = load_or_run_probe(options);
    const std::string text =
        command.json ? nlohmann::json(result).dump(2) + "\n" : format_table(result);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "rr-vmm probe: %s\n", error.what());
    return 1;
  }
}

}  // namespace vmm::probe
