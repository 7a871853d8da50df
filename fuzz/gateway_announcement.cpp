// libFuzzer: the announcement decoder and verifier on arbitrary datagrams.
// Whatever decodes must re-encode to the same bytes under the same tag, and
// nothing unauthenticated may be accepted.
#include <cstdint>
#include <span>
#include <vector>

#include "announcement.h"
#include "librr/error.h"
#include "registry.h"

namespace {

const gateway::Registry& registry() {
  static const gateway::Registry instance = gateway::Registry::parse(
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
    auto decoded = gateway::decode_announcement(datagram);
    // Re-encoding the parsed fields must reproduce the authenticated bytes.
    auto key = librr::Key::from_bytes(std::vector<uint8_t>(32, 0));
    auto again = gateway::encode_announcement(decoded.message, key);
    if (again.size() != datagram.size() ||
        !std::equal(decoded.authenticated.begin(), decoded.authenticated.end(), again.begin()))
      __builtin_trap();
  } catch (const librr::Error&) {
  }
  gateway::AnnouncementVerifier verifier(registry());
  gateway::Announcement accepted;
  // Random bytes carry no valid 256-bit MAC: acceptance would mean a broken check.
  if (verifier.verify(datagram, &accepted) == gateway::Verdict::kAccepted) __builtin_trap();
  return 0;
}
