#include "replay/replay_rules.h"

namespace vmm {

std::optional<ReplayRules> ReplayRules::from_manifest(const librr::ToolVersions& tools) {
  const std::string& version = tools.replay_rules_version;
  if (version.empty() || version == "1") return version_1();
  if (version == "2") return version_2();
  if (version == current().manifest_value()) return current();
  return std::nullopt;
}

}  // namespace vmm
