#pragma once
// Decides how a frame received by a recorded LAN host is represented in its
// log: as a reference to a cooperating sender's announced frame, as a
// reference to a frame the gateway logged, or in full. Flags frames that claim
// a cooperating host's address without that host having announced them
// (spoofing, or an announcement lost on the way).
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>

#include "librr/coop_announcement.h"
#include "librr/coop_registry.h"
#include "librr/ethernet_frame.h"

namespace librr {

enum class FrameReferenceKind : uint8_t { kSenderSequence, kGatewayDigest, kLogInFull };
std::string_view to_string(FrameReferenceKind kind);

struct FrameReference {
  FrameReferenceKind kind = FrameReferenceKind::kLogInFull;
  std::string sender;     // kSenderSequence: the cooperating host; kGatewayDigest: the gateway
  uint64_t sequence = 0;  // the sender's frame sequence number or the gateway's log sequence
  Digest digest{};
  // The frame's source MAC or IP belongs to a cooperating host, yet no
  // authenticated announcement by that host matches it.
  bool unauthenticated_cooperating_source = false;
  std::string claimed_host;  // the host whose address the frame claims, if any
};

class FrameReferenceResolver {
 public:
  // Remembers at most `capacity` announced digests per kind (oldest forgotten first).
  FrameReferenceResolver(const CoopRegistry& registry, size_t capacity = 1 << 20)
      : registry_(&registry), capacity_(capacity) {}

  // Only announcements that passed AnnouncementVerifier may be added.
  void add(const Announcement& verified);
  FrameReference resolve(std::span<const uint8_t> frame) const;

 private:
  struct Origin {
    std::string sender;
    uint64_t sequence = 0;
  };
  struct DigestHash {
    size_t operator()(const Digest& d) const {
      size_t h;
      std::memcpy(&h, d.data(), sizeof h);  // BLAKE2b output is uniformly distributed
      return h;
    }
  };
  using Table = std::unordered_map<Digest, Origin, DigestHash>;
  void remember(Table& table, std::deque<Digest>& order, const Digest& digest, Origin origin);

  const CoopRegistry* registry_;
  size_t capacity_;
  Table host_frames_;
  std::deque<Digest> host_order_;
  Table gateway_frames_;
  std::deque<Digest> gateway_order_;
};

}  // namespace librr
