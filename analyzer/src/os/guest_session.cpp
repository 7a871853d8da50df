#include "os/guest_session.h"

#include "librr/recording.h"
#include "machine/vcpu_state.h"
#include "profile/profile_store.h"
#include "travel/position_spec.h"

namespace analyzer {

namespace {
constexpr uint64_t kCr0Paging = 1ull << 31;
}

MachineView machine_view(const TimeTraveler& traveler) {
  const auto& sregs = traveler.vcpu().sregs;
  return MachineView{traveler.memory(), sregs.cr3, (sregs.cr0 & kCr0Paging) != 0};
}

GuestSession::GuestSession(const GuestSessionOptions& options) {
  const PositionSpec spec = PositionSpec::parse(options.position);
  const librr::RecordingDir dir = librr::RecordingDir::open(options.recording);
  // The profile first: a missing or unusable one is reported before a long replay.
  profile_ = std::make_unique<Profile>(profile_for_recording(dir.manifest(), options.profile));
  TravelOptions travel;
  travel.key = options.key;
  travel.force = options.force;
  travel.progress = options.progress;
  traveler_ = std::make_unique<TimeTraveler>(options.recording, travel);
  position_ = seek_to(*traveler_, spec, dir.log_path(), options.key);
  model_ = make_os_model(*profile_, machine_view(*traveler_));
}

GuestSession::~GuestSession() = default;

}  // namespace analyzer
