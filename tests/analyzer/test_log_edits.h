#pragma once
// Edits of a real recording's log that stay well-formed (valid checksums):
// what a torn or tampered log can hold, for tests of how replay reports it.
#include <filesystem>
#include <variant>
#include <vector>

#include "librr/log.h"
#include "librr/recording.h"

namespace log_edits {

// Flips one bit of the registers digest in the recording's last state
// digest and rewrites the log: the log still reads cleanly, but replay
// diverges where the digest is checked. Returns the landmark of that digest
// (0: none found).
inline uint64_t corrupt_last_state_digest(const std::filesystem::path& recording) {
  const std::filesystem::path log = librr::RecordingDir::open(recording).log_path();
  std::vector<librr::Event> events;
  {
    librr::LogReader reader(log);
    while (auto event = reader.next()) events.push_back(std::move(*event));
  }
  librr::StateDigest* last = nullptr;
  for (librr::Event& event : events)
    if (auto* digest = std::get_if<librr::StateDigest>(&event)) last = digest;
  if (!last) return 0;
  last->registers[0] ^= 1;
  std::filesystem::remove(log);
  std::filesystem::remove(librr::index_path_for(log));
  librr::LogWriter writer(log);
  for (const auto& event : events) writer.append(event);
  writer.close();
  return last->pos.landmark;
}

}  // namespace log_edits
