#include "commands/travel_errors.h"

#include <cstdio>

#include "commands/command.h"
#include "librr/replayer.h"
#include "travel/position_spec.h"
#include "travel/time_traveler.h"

namespace analyzer {

int report_travel_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const PositionSyntaxError& e) {
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return kExitUsage;
  } catch (const PositionPastEnd& e) {
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return kExitUsage;
  } catch (const librr::Divergence& e) {
    std::fprintf(stderr, "rr-analyze: replay diverged from the recording: %s\n", e.what());
    return kExitProblem;
  } catch (const librr::FormatError& e) {  // includes vmm::RecordingDamaged
    std::fprintf(stderr, "rr-analyze: recording damaged: %s\n", e.what());
    return kExitProblem;
  }
}

}  // namespace analyzer
