#pragma once
// The recorded guest's operating system at one position: replays the
// recording there (TimeTraveler), loads its profile (given, or generated and
// cached from the kernel the manifest names) and builds the OS model. What
// `rr-analyze ps` and `dmesg` share.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "librr/crypto.h"
#include "librr/position.h"
#include "os/os_model.h"
#include "profile/profile.h"
#include "travel/time_traveler.h"

namespace analyzer {

struct GuestSessionOptions {
  std::filesystem::path recording;
  std::optional<librr::Key> key;
  std::string position = "end";  // travel/position_spec.h syntax
  std::string profile;           // ISF file; "" = the cached profile of the recorded kernel
  bool force = false;
  std::function<void(double)> progress;
};

class GuestSession {
 public:
  // Throws PositionSyntaxError, PositionPastEnd, librr::Divergence,
  // librr::FormatError (damaged recording), ProfileMismatch, librr::Error.
  explicit GuestSession(const GuestSessionOptions& options);
  ~GuestSession();

  const OsModel& model() const { return *model_; }
  const Profile& profile() const { return *profile_; }
  // Where the session stands, named as the position asked for resolved to
  // (exact, or by arrivals for a breakpoint-hit name).
  const PositionName& position() const { return position_; }
  const TimeTraveler& traveler() const { return *traveler_; }

 private:
  std::unique_ptr<Profile> profile_;
  std::unique_ptr<TimeTraveler> traveler_;
  std::unique_ptr<OsModel> model_;
  PositionName position_;
};

// The MachineView of a TimeTraveler's current position.
MachineView machine_view(const TimeTraveler& traveler);

}  // namespace analyzer
