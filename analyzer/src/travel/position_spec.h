#pragma once
// The position names users type (docs/analyzer.md, "Positions"):
//
//   L123                      landmark 123 (the 123rd synchronous exit)
//   L123+a2  L123+s40         librr's exact form: landmark, async stop, single
//   L123+a2+s5                steps (zero parts omitted), see librr/position.h
//   L123@0xffffffff81000000#3 the 3rd time (counting from 1, #1 if omitted)
//                             that rip == the address at or after L123; any
//                             exact position may come before the @, and
//                             more links may follow, each counting after
//                             the previous one (PositionName): what
//                             breakpoint hits found with the debug registers
//                             are called
//   irq:17                    where the 17th logged interrupt is delivered
//                             (counting from 1; before the guest takes it)
//   input:serial0:3           where the 3rd logged input record on channel
//                             serial0 is handed to the device
//   end                       the last position of the recording
//   start                     the beginning (L0)
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"
#include "librr/position.h"
#include "travel/time_traveler.h"

namespace analyzer {

// The text is not a position name; the message shows the accepted forms.
class PositionSyntaxError : public librr::Error {
 public:
  using librr::Error::Error;
};

struct PositionSpec {
  enum class Kind { kExact, kPcHit, kInterrupt, kInput, kEnd };
  Kind kind = Kind::kExact;
  librr::Position exact;            // kExact; for kPcHit the position to count from
  std::vector<PcArrival> arrivals;  // kPcHit, one or more links
  uint64_t ordinal = 1;             // kInterrupt, kInput: record number (from 1)
  std::string channel;              // kInput

  // kExact, kPcHit: the traveler's name of the position.
  PositionName name() const { return PositionName(exact, arrivals); }

  // Throws PositionSyntaxError.
  static PositionSpec parse(std::string_view text);
  std::string to_string() const;
};

// One line per form, for --help and error messages.
extern const char* const kPositionSyntaxHelp;

// Moves `traveler` to the position `spec` names and returns its name there
// (exact, or by arrivals for pc@hit names: TimeTraveler::seek_named).
// irq/input are looked up in the recording's log. Throws PositionPastEnd when the position lies
// beyond the recording (saying where it ends) and librr::Error when it
// names something the recording does not have (a 20th interrupt of 19).
PositionName seek_to(TimeTraveler& traveler, const PositionSpec& spec,
                     const std::filesystem::path& log_path, const std::optional<librr::Key>& key);

}  // namespace analyzer
