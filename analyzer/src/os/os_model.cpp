#include "os/os_model.h"

#include "os/linux_model.h"
#include "os/test_guest_model.h"
#include "profile/isf_format.h"

namespace analyzer {

std::unique_ptr<OsModel> make_os_model(const Profile& profile, const MachineView& view) {
  const std::string os = profile.os();
  if (os == kOsLinux) return std::make_unique<LinuxModel>(profile, view);
  if (os == kOsTestGuest) return std::make_unique<TestGuestModel>(profile, view);
  throw librr::Error("profile " + profile.source() + " is for OS '" + os +
                     "', which no model knows (linux, rr-test-guest)");
}

}  // namespace analyzer
