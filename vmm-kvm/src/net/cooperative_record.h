#pragma once
// The recording side of cooperative logging (schemas/gateway-protocol.md):
// - announces (sequence, digest) of every frame the guest transmits, as
//   authenticated kind-1 messages under this host's registry key, to the
//   gateway and to the other cooperating hosts' recorders, *before* the frame
//   itself leaves, so a receiver normally has the announcement first;
// - listens for the other hosts' and the gateway's announcements, verifies
//   them (registry keys, replay window) and logs a received frame as a
//   reference when an authenticated announcement covers it, in full otherwise,
//   and in full on the flagged channel when it claims a cooperating host's
//   address without one.
//
// Bounded wait: a frame that claims a cooperating host may arrive before that
// host's announcement (reordering, a busy receiver). The recorder then waits
// for announcements up to `host_wait` and gives up: the frame is logged in
// full and flagged. Frames from elsewhere wait up to `gateway_wait` (default
// 0: the gateway publishes after its log is on disk, ~flush_ms later, so
// waiting for it stalls the guest) and are otherwise logged in full. The wait
// stalls the guest's vCPU; it never blocks forever.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "net/cooperation.h"

namespace vmm::net {

struct CooperativeRecordSettings {
  std::filesystem::path registry;        // registry JSON (keys of every host and the gateway)
  std::string name;                      // this host's registry name
  std::vector<std::string> announce_to;  // "address:port" receivers of our announcements
  uint16_t listen_port = 0;              // where others' announcements arrive; 0 = nowhere
  std::chrono::milliseconds host_wait{250};
  std::chrono::milliseconds gateway_wait{0};
};

struct CooperativeRecordStats {
  uint64_t transmitted = 0;             // frames announced
  uint64_t announce_send_failures = 0;  // datagrams the kernel refused
  uint64_t announcements_accepted = 0, announcements_rejected = 0;
  uint64_t host_references = 0, gateway_references = 0, full = 0, flagged = 0;
  uint64_t waits = 0, waits_timed_out = 0;
};

class CooperativeRecorder final : public Cooperation {
 public:
  // Throws librr::Error (registry, unknown name, socket/bind failures).
  explicit CooperativeRecorder(const CooperativeRecordSettings& settings);
  ~CooperativeRecorder() override;

  void on_transmit(std::span<const uint8_t> frame) override;
  LoggedFrame log_received(std::span<const uint8_t> frame) override;
  std::vector<uint8_t> resolve(const FrameReference& reference) override;

  // Reads and verifies every announcement waiting on the socket.
  void poll_announcements();
  const CooperativeRecordStats& stats() const { return stats_; }
  uint16_t listen_port() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
  CooperativeRecordStats stats_;
};

}  // namespace vmm::net
