#pragma once
// The announcement protocol (schemas/gateway-protocol.md): cooperating hosts
// announce (sequence number, digest) of every frame they send, the gateway
// announces the digests of frames it logged. Each UDP datagram is one message
// authenticated with a keyed BLAKE2b MAC under the sender's registry key and
// carries a counter that must increase (replay protection).
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "librr/coop_registry.h"
#include "librr/crypto.h"

namespace librr {

inline constexpr uint32_t kAnnouncementMagic = 0x4e415252;  // "RRAN" little-endian
inline constexpr uint8_t kAnnouncementVersion = 1;
inline constexpr size_t kMaxAnnouncementSize = 1472;  // one UDP datagram in a 1500-byte MTU
inline constexpr size_t kAnnouncementTagSize = 32;

enum class AnnouncementKind : uint8_t {
  kHostFrames = 1,     // a cooperating host's sent frames: (send sequence, digest)
  kGatewayFrames = 2,  // frames the gateway logged: (gateway log sequence, digest)
};

struct AnnouncedFrame {
  uint64_t sequence = 0;
  Digest digest{};
  bool operator==(const AnnouncedFrame&) const = default;
};

struct Announcement {
  AnnouncementKind kind = AnnouncementKind::kHostFrames;
  std::string sender;
  uint64_t counter = 0;  // strictly increasing per sender, never reused
  std::vector<AnnouncedFrame> frames;
};

size_t max_frames_per_announcement(size_t sender_name_length);

// Encodes and MACs one message. Throws Error if it would not fit a datagram.
std::vector<uint8_t> encode_announcement(const Announcement& message, const Key& key);

// Parses a datagram without checking the MAC. Throws FormatError.
struct DecodedAnnouncement {
  Announcement message;
  std::span<const uint8_t> authenticated;  // bytes covered by the tag
  Digest tag{};
};
DecodedAnnouncement decode_announcement(std::span<const uint8_t> datagram);

// Sliding-window replay check (as in IPsec/DTLS): accepts each counter once,
// tolerating reordering of up to 64 messages.
class AnnouncementReplayWindow {
 public:
  // Records and returns true if `counter` was not seen and is not too old.
  bool accept(uint64_t counter);
  // Would accept() succeed? (Does not record.)
  bool fresh(uint64_t counter) const;

 private:
  uint64_t highest_ = 0;
  uint64_t seen_ = 0;  // bit i: highest_ - i was accepted
  bool any_ = false;
};

enum class AnnouncementVerdict : uint8_t {
  kAccepted,
  kMalformed,
  kUnknownSender,
  kBadTag,
  kReplayed,
  kWrongKind
};
std::string_view to_string(AnnouncementVerdict verdict);

// Checks datagrams against the registry: known sender, valid MAC under that
// sender's key, fresh counter. Host messages must come from hosts, gateway
// messages from the gateway.
class AnnouncementVerifier {
 public:
  explicit AnnouncementVerifier(const CoopRegistry& registry) : registry_(&registry) {}
  AnnouncementVerdict verify(std::span<const uint8_t> datagram, Announcement* accepted);

 private:
  const CoopRegistry* registry_;
  std::map<std::string, AnnouncementReplayWindow, std::less<>> windows_;
};

// Builds authenticated messages for one sender with a counter that starts at
// the wall clock in nanoseconds, so a restarted sender never reuses a counter
// without having to persist it.
class AnnouncementSender {
 public:
  AnnouncementSender(AnnouncementKind kind, std::string name, Key key, uint64_t first_counter);
  // Splits `frames` into as many datagrams as needed.
  std::vector<std::vector<uint8_t>> encode(std::span<const AnnouncedFrame> frames);

 private:
  AnnouncementKind kind_;
  std::string name_;
  Key key_;
  uint64_t counter_;
};

}  // namespace librr
