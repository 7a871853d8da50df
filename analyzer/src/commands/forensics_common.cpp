#include "commands/forensics_common.h"

#include <unistd.h>

#include <cstdio>

#include "commands/travel_errors.h"
#include "librr/replayer.h"
#include "os/kernel_memory.h"
#include "travel/position_spec.h"

namespace analyzer {

void InspectOptions::add_to(CLI::App& command) {
  recording.add_to(command);
  command.add_option("--at", position,
                     "position to look at (default: end); see `rr-analyze at --help`");
  command.add_option("--profile", profile,
                     "ISF profile of the guest kernel (default: generated from the recorded "
                     "kernel ELF and cached)");
  command.add_flag("--force", force, "replay even on another CPU or device-model version");
}

GuestSessionOptions InspectOptions::session_options() const {
  GuestSessionOptions session;
  session.recording = recording.recording;
  session.key = recording.key();
  session.position = position;
  session.profile = profile;
  session.force = force;
  if (isatty(STDERR_FILENO))
    session.progress = [](double fraction) {
      std::fprintf(stderr, "\rrr-analyze: replaying... %3.0f%%", fraction * 100);
      std::fflush(stderr);
    };
  return session;
}

int with_guest_session(const InspectOptions& options,
                       const std::function<int(const GuestSession&)>& body) {
  const GuestSessionOptions session_options = options.session_options();
  try {
    const GuestSession session(session_options);
    if (session_options.progress) std::fprintf(stderr, "\r\033[K");
    return body(session);
  } catch (const ProfileMismatch& e) {
    std::fprintf(stderr, "rr-analyze: wrong profile: %s\n", e.what());
    return kExitUsage;
  } catch (const GuestReadError& e) {
    std::fprintf(stderr, "rr-analyze: guest memory: %s\n", e.what());
    return kExitProblem;
  } catch (const NotSupported& e) {
    std::fprintf(stderr, "rr-analyze: %s\n", e.what());
    return kExitProblem;
  } catch (...) {
    return report_travel_error(std::current_exception());
  }
}

}  // namespace analyzer
