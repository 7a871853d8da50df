#pragma once
// `rr-vmm record --out REC [guest options]` and `rr-vmm replay REC`.
#include <CLI/CLI.hpp>

namespace vmm::cli {

void add_record_command(CLI::App& app);
void add_replay_command(CLI::App& app);

// Identifies the device models' behaviour: a recording made by a VMM whose
// devices behave differently cannot be replayed. Bump on any change to a
// device model's guest-visible behaviour or state layout.
inline constexpr const char* kDeviceModelVersion = "1";

}  // namespace vmm::cli
