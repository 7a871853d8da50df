#pragma once
// Host side of virtio-net: where transmitted frames go and where received
// frames come from. The device never reads a backend itself: the machine
// polls poll_fd(), takes frames with receive() and hands them to
// VirtioNet::deliver_frame(), the single point where record/replay logs (or,
// in replay, supplies) received frames.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vmm::net {

// Largest frame a backend delivers: a 64 KiB IP packet plus an Ethernet
// header with a VLAN tag. Larger messages are dropped.
inline constexpr size_t kMaxFrameBytes = 65535 + 18;

class NetBackend {
 public:
  virtual ~NetBackend() = default;
  // Sends one Ethernet frame. Returns false if it was dropped (the peer is
  // gone or its buffer is full); a virtual NIC may drop frames.
  virtual bool send(std::span<const uint8_t> frame) = 0;
  // Returns the next received frame, or nothing if none is pending; never
  // blocks.
  virtual std::optional<std::vector<uint8_t>> receive() = 0;
  // An fd that becomes readable when receive() may return a frame, or -1
  // if the backend never receives.
  virtual int poll_fd() const = 0;
  // Human-readable description for logs ("tap:tap0", "unix:/tmp/s").
  virtual std::string describe() const = 0;
};

// Drops every frame and never receives: for replay, where received frames
// come from the log and transmitted frames must not reach the world again.
std::unique_ptr<NetBackend> make_null_backend();

// Builds a backend from a command-line spec:
//   tap:NAME   a TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI)
//   unix:PATH  connects to a SOCK_SEQPACKET (else SOCK_DGRAM) unix socket
//   fd:N       an already-connected datagram/seqpacket socket, taken over
//   none       make_null_backend()
// Throws librr::Error with the spec and errno text on failure.
std::unique_ptr<NetBackend> make_net_backend(const std::string& spec);

}  // namespace vmm::net
