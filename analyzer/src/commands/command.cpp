#include "commands/command.h"

namespace analyzer {

void RecordingOptions::add_to(CLI::App& command) {
  command.add_option("recording", recording, "recording directory (made by rr-vmm record)")
      ->required();
  command.add_option("--key", key_file,
                     "key file (64 hex digits) for a MAC'd or encrypted recording");
  command.add_flag("--json", json, "machine-readable output");
}

std::optional<librr::Key> RecordingOptions::key() const {
  if (key_file.empty()) return std::nullopt;
  return librr::Key::load_file(key_file);
}

}  // namespace analyzer
