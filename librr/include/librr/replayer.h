#pragma once
// The replay side of a session, independent of any VMM: a cursor over the
// event log that hands each record to the VMM exactly at its position, and
// the Divergence error a VMM throws when the machine disagrees with the log.
#include <filesystem>
#include <optional>
#include <string>

#include "librr/events.h"
#include "librr/log.h"

namespace librr {

// Replay no longer matches the recording. `where` is the position at which the
// disagreement was found; the message says what differs.
class Divergence : public Error {
 public:
  Divergence(const Position& where, const std::string& what)
      : Error("divergence at " + where.to_string() + ": " + what), where_(where) {}
  const Position& where() const { return where_; }

 private:
  Position where_;
};

class Replayer {
 public:
  Replayer(const std::filesystem::path& log_path, LogReaderOptions options);

  // The next record not yet consumed, or nullptr at the end of the log.
  // Valid until the call to peek() or take_at() after it is consumed.
  const Event* peek();
  // Consumes the next record if it is at exactly `pos` and returns it (the
  // same event peek() showed, with the same lifetime), else nullptr.
  const Event* take_at(const Position& pos);
  // Throws Divergence if a record lies before `pos`: the machine went past a
  // point where the log says something happened.
  void check_nothing_before(const Position& pos);
  // Where the log ended (nullopt if it ended cleanly with EndOfRecording),
  // and the EndOfRecording record once consumed.
  const std::optional<LogProblem>& problem() const { return reader_.problem(); }
  uint64_t records_consumed() const { return consumed_; }
  LogReader& reader() { return reader_; }

 private:
  LogReader reader_;
  const Event* next_ = nullptr;  // the reader's recycled event (see LogReader::next_ref)
  bool fetched_ = false;
  uint64_t consumed_ = 0;
};

}  // namespace librr
