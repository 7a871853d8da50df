#pragma once
// The event tables of the forensic export: process_events, syscalls and
// file_events, from the timeline by replay (timeline/timeline.h), which
// replays the recording once more per group of kernel functions it watches.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "librr/crypto.h"
#include "profile/profile.h"
#include "sql/forensic_sampler.h"
#include "sql/sqlite.h"

namespace analyzer::sql {

struct TimelineTablesResult {
  uint64_t process_events = 0;
  uint64_t syscalls = 0;
  uint64_t file_events = 0;
  uint64_t other_events = 0;  // kinds no table holds (network activity)
  // Tasks the timeline saw created, to refine processes.first_seen.
  std::vector<ProcessCreation> creations;
};

// Replays `recording` with the timeline's breakpoints and writes the three
// tables. Throws librr::Error (a profile lacking a function, a divergence)
// with nothing written.
TimelineTablesResult export_timeline_tables(Database& db, const std::filesystem::path& recording,
                                            const std::optional<librr::Key>& key,
                                            const Profile& profile);

}  // namespace analyzer::sql
