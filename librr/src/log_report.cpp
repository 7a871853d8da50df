#include <fmt/format.h>

#include "librr/log.h"

namespace librr {

std::string_view log_problem_kind_name(LogProblemKind kind) {
  switch (kind) {
    case LogProblemKind::torn_tail:
      return "torn_tail";
    case LogProblemKind::bad_file_header:
      return "bad_file_header";
    case LogProblemKind::bad_header:
      return "bad_header";
    case LogProblemKind::bad_checksum:
      return "bad_checksum";
    case LogProblemKind::bad_chain:
      return "bad_chain";
    case LogProblemKind::bad_mac:
      return "bad_mac";
    case LogProblemKind::decrypt_failed:
      return "decrypt_failed";
    case LogProblemKind::decompress_failed:
      return "decompress_failed";
    case LogProblemKind::bad_record:
      return "bad_record";
    case LogProblemKind::missing_end:
      return "missing_end";
    case LogProblemKind::trailing_data:
      return "trailing_data";
  }
  return "unknown";
}

std::string LogProblem::to_string() const {
  return fmt::format("{} at chunk {} (offset {}): {}", log_problem_kind_name(kind), chunk_index,
                     offset, message);
}

std::string_view index_status_name(IndexStatus status) {
  switch (status) {
    case IndexStatus::loaded:
      return "loaded";
    case IndexStatus::rebuilt_missing:
      return "rebuilt (missing)";
    case IndexStatus::rebuilt_stale:
      return "rebuilt (stale)";
    case IndexStatus::rebuilt_corrupt:
      return "rebuilt (corrupt)";
  }
  return "unknown";
}

std::string VerifyReport::to_string() const {
  std::string s = fmt::format(
      "status: {}\n", ok                                                        ? "ok"
                      : problem && problem->kind == LogProblemKind::missing_end ? "unterminated"
                                                                                : "damaged");
  if (problem) s += fmt::format("problem: {}\n", problem->to_string());
  s += fmt::format("chunks: {} ({} valid bytes)\nrecords: {}\n", chunk_count, valid_bytes,
                   record_count);
  for (size_t i = 0; i < counts_by_type.size(); ++i)
    if (counts_by_type[i])
      s += fmt::format("  {}: {}\n", event_type_name(static_cast<EventType>(i + 1)),
                       counts_by_type[i]);
  if (first) s += fmt::format("positions: {} .. {}\n", first->to_string(), last->to_string());
  s += fmt::format("terminated: {}\nauthenticated: {}\nencrypted: {}\n", terminated ? "yes" : "no",
                   authenticated ? "yes (MAC checked)" : "no", encrypted ? "yes" : "no");
  return s;
}

}  // namespace librr
