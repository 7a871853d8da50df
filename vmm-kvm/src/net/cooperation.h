#pragma once
// Cooperative logging (Cooperative ReVirt, schemas/gateway-protocol.md "VMM
// side"): a recorded guest's virtio-net asks its Cooperation how to log each
// received frame (in full, or as a reference to a frame a cooperating host or
// the gateway announced), tells it about every frame the guest transmits
// (numbered 1, 2, ... in transmit order, identically in record and replay),
// and in replay asks it for the bytes of a referenced frame.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "librr/crypto.h"

namespace vmm::net {

// Log channels of received frames (librr Input records). kNet0 ("net0", in
// librr/recorder.h) holds a frame in full; these two are cooperative logging's.
// A frame claiming a cooperating host's address without an authenticated
// announcement: logged in full, flagged by its channel.
inline constexpr std::string_view kNetUnauthenticatedChannel = "net0.unauth";
// A FrameReference (encode_frame_reference) instead of the frame.
inline constexpr std::string_view kNetReferenceChannel = "net0.ref";

// Channels whose Input records are received frames (net0 or the two above).
inline bool is_received_frame_channel(std::string_view channel) {
  return channel == "net0" || channel == kNetUnauthenticatedChannel ||
         channel == kNetReferenceChannel;
}

enum class FrameOrigin : uint8_t {
  kHost = 1,     // a cooperating host's transmitted frame number `sequence`
  kGateway = 2,  // a frame in the gateway's log (`sequence` = segment << 32 | ordinal)
};

struct FrameReference {
  FrameOrigin origin = FrameOrigin::kHost;
  std::string sender;  // registry name of the host or of the gateway
  uint64_t sequence = 0;
  librr::Digest digest{};  // BLAKE2b-256 of the frame: replay checks what it fetched
  uint32_t length = 0;
  bool operator==(const FrameReference&) const = default;
};

// Layout (little-endian): u8 version=1, u8 origin, u8 name length n, n bytes
// name, u64 sequence, 32 bytes digest, u32 frame length.
std::vector<uint8_t> encode_frame_reference(const FrameReference& reference);
// Throws librr::FormatError on anything else (truncated, trailing bytes, bad origin).
FrameReference decode_frame_reference(std::span<const uint8_t> bytes);

struct LoggedFrame {
  std::string_view
      channel;  // librr::channels::kNet0, kNetUnauthenticatedChannel or kNetReferenceChannel
  std::vector<uint8_t> data;  // the frame, or its encoded FrameReference
};

class Cooperation {
 public:
  virtual ~Cooperation() = default;
  // Every frame the guest transmits, in order, before it goes to the backend.
  virtual void on_transmit(std::span<const uint8_t> frame) = 0;
  // Record: how to log a received frame. May wait (bounded) for an announcement.
  virtual LoggedFrame log_received(std::span<const uint8_t> frame) = 0;
  // Replay: the bytes of a referenced frame. Throws librr::Error naming the
  // reference if no source has it or the bytes do not match its digest.
  virtual std::vector<uint8_t> resolve(const FrameReference& reference) = 0;
};

}  // namespace vmm::net
