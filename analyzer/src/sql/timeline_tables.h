#pragma once
// The event tables of the forensic export: process_events, syscalls,
// file_events and net_events, from the timeline by replay (timeline/timeline.h), which
// replays the recording once more per group of kernel functions it watches.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
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
  uint64_t net_events = 0;
  uint64_t other_events = 0;  // kinds no table holds
  // Tasks the timeline saw created, to refine processes.first_seen.
  std::vector<ProcessCreation> creations;
};

// Replays `recording` with the timeline's breakpoints (for `kinds`, empty:
// all the OS has) and writes the four tables. Throws librr::Error (a profile lacking a function, a
// divergence) with nothing written.
TimelineTablesResult export_timeline_tables(Database& db, const std::filesystem::path& recording,
                                            const std::optional<librr::Key>& key,
                                            const Profile& profile,
                                            const std::set<std::string>& kinds = {});

}  // namespace analyzer::sql
