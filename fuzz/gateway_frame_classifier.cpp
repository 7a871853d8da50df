// libFuzzer: the frame parser and classifier on arbitrary bytes. The first
// four input bytes choose the wire length, the interface role and the link
// direction; the rest is the captured frame, copied to an exactly sized heap
// buffer so that AddressSanitizer catches any read past the capture.
#include <cstdint>
#include <cstring>
#include <vector>

#include "classifier.h"
#include "librr/coop_reference.h"
#include "librr/ethernet_frame.h"
#include "librr/net_address.h"

namespace {

const gateway::Classifier& classifier() {
  static const gateway::Classifier instance(
      {gateway::Prefix::parse("10.0.0.0/8"), gateway::Prefix::parse("fd00::/8")}, true);
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint16_t extra_wire_length;
  std::memcpy(&extra_wire_length, data, 2);
  auto role = (data[2] & 1) ? gateway::InterfaceRole::kLan : gateway::InterfaceRole::kWan;
  auto link = (data[3] & 1) ? gateway::LinkDirection::kSent : gateway::LinkDirection::kReceived;
  std::vector<uint8_t> frame(data + 4, data + size);
  auto wire_length = static_cast<uint32_t>(frame.size() + extra_wire_length);
  auto parsed = librr::parse_ethernet_frame(frame, wire_length);
  if (parsed.status == librr::EthernetFrameStatus::kIp &&
      (!parsed.source_ip || !parsed.destination_ip))
    __builtin_trap();
  if (parsed.capture_truncated != (extra_wire_length != 0)) __builtin_trap();
  auto classification = classifier().classify(parsed, role, link);
  // Only the copy the gateway transmits into the LAN (or WAN ingress) is ever logged.
  if (classification.log && classification.direction != gateway::Direction::kIncoming)
    __builtin_trap();
  if (classification.log && role == gateway::InterfaceRole::kWan) __builtin_trap();
  return 0;
}
