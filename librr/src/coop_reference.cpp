#include "librr/coop_reference.h"

namespace librr {

std::string_view to_string(FrameReferenceKind kind) {
  switch (kind) {
    case FrameReferenceKind::kSenderSequence:
      return "sender-sequence";
    case FrameReferenceKind::kGatewayDigest:
      return "gateway-digest";
    case FrameReferenceKind::kLogInFull:
      return "log-in-full";
  }
  return "?";
}

void FrameReferenceResolver::remember(Table& table, std::deque<Digest>& order, const Digest& digest,
                                      Origin origin) {
  // The first announcement of a digest wins: identical frames sent twice keep
  // referring to the earliest copy, which is still valid for replay.
  if (!table.emplace(digest, std::move(origin)).second) return;
  order.push_back(digest);
  while (order.size() > capacity_) {
    table.erase(order.front());
    order.pop_front();
  }
}

void FrameReferenceResolver::add(const Announcement& verified) {
  bool gateway = verified.kind == AnnouncementKind::kGatewayFrames;
  for (const auto& frame : verified.frames)
    remember(gateway ? gateway_frames_ : host_frames_, gateway ? gateway_order_ : host_order_,
             frame.digest, Origin{verified.sender, frame.sequence});
}

FrameReference FrameReferenceResolver::resolve(std::span<const uint8_t> frame) const {
  FrameReference reference;
  reference.digest = hash256(frame);
  auto parsed = parse_ethernet_frame(frame, static_cast<uint32_t>(frame.size()));
  const CooperatingHost* claimed = nullptr;
  if (parsed.status != EthernetFrameStatus::kRunt) claimed = registry_->owner_of(parsed.source_mac);
  if (!claimed && parsed.source_ip) claimed = registry_->owner_of(*parsed.source_ip);
  if (claimed) reference.claimed_host = claimed->name;

  if (auto it = host_frames_.find(reference.digest); it != host_frames_.end()) {
    // Announced, but by a different host than the one whose address it carries.
    if (!claimed || claimed->name == it->second.sender) {
      reference.kind = FrameReferenceKind::kSenderSequence;
      reference.sender = it->second.sender;
      reference.sequence = it->second.sequence;
      return reference;
    }
  }
  if (claimed) {
    reference.unauthenticated_cooperating_source = true;
    return reference;  // log in full: never trust a claimed cooperating source blindly
  }
  if (auto it = gateway_frames_.find(reference.digest); it != gateway_frames_.end()) {
    reference.kind = FrameReferenceKind::kGatewayDigest;
    reference.sender = it->second.sender;
    reference.sequence = it->second.sequence;
  }
  return reference;
}

}  // namespace librr
