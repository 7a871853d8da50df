// libFuzzer: the announcement decoder and verifier on arbitrary datagrams.
// Whatever decodes must re-encode to the same bytes under the same tag, and
// nothing unauthenticated may be accepted.
#include <cstdint>
#include <span>
#include <vector>

#include "librr/coop_announcement.h"
#include "librr/coop_registry.h"
#include "librr/error.h"

namespace {

const librr::CoopRegistry& registry() {
  static const librr::CoopRegistry instance = librr::CoopRegistry::parse(
      R"({"gateway": {"name": "gw", "key": "3333333333333333333333333333333333333333333333333333333333333333"},
          "hosts": [{"name": "vm1", "macs": ["02:00:00:00:00:01"], "ips": ["10.0.0.1"],
                     "key": "1111111111111111111111111111111111111111111111111111111111111111"}]})",
      ".");
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> datagram(data, data + size);
  try {
    auto decoded = librr::decode_announcement(datagram);
    // Re-encoding the parsed fields must reproduce the authenticated bytes.
    auto key = librr::Key::from_bytes(std::vector<uint8_t>(32, 0));
    auto again = librr::encode_announcement(decoded.message, key);
    if (again.size() != datagram.size() ||
        !std::equal(decoded.authenticated.begin(), decoded.authenticated.end(), again.begin()))
      __builtin_trap();
  } catch (const librr::Error&) {
  }
  librr::AnnouncementVerifier verifier(registry());
  librr::Announcement accepted;
  // Random bytes carry no valid 256-bit MAC: acceptance would mean a broken check.
  if (verifier.verify(datagram, &accepted) == librr::AnnouncementVerdict::kAccepted)
    __builtin_trap();
  return 0;
}
