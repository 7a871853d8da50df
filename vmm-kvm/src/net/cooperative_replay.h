#pragma once
// The replay side of cooperative logging: resolves the frame references a
// cooperative recording logged (channel net0.ref) from
// - the gateway's log (digest -> frame through its SQLite index), and
// - the sending host's recording: that host is replayed (vmm::ReplayMachine,
//   on its own thread) alongside; every frame a replayed guest transmits is
//   numbered exactly as its recorder numbered it and kept, and a replay that
//   needs a frame waits until its sender's replay has transmitted it. Each
//   sender is replayed once, forward only; hosts may reference each other
//   (causality guarantees progress; if every replay waits, it is reported as a
//   cycle).
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"
#include "net/cooperation.h"

namespace vmm::net {

struct CooperativeReplaySettings {
  std::string self;  // registry name of the host being replayed ("" if unknown)
  std::vector<std::filesystem::path> gateway_logs;          // rr-gateway output directories
  std::map<std::string, std::filesystem::path> recordings;  // host name -> its recording
  std::optional<librr::Key> key;                            // of MAC'd/encrypted recordings
};

struct CooperativeReplayStats {
  uint64_t from_gateway = 0, from_hosts = 0, sender_replay_steps = 0;
};

class CooperativeReplayer final : public Cooperation {
 public:
  explicit CooperativeReplayer(const CooperativeReplaySettings& settings);
  ~CooperativeReplayer() override;

  void on_transmit(std::span<const uint8_t> frame) override;
  LoggedFrame log_received(std::span<const uint8_t> frame) override;
  std::vector<uint8_t> resolve(const FrameReference& reference) override;
  const CooperativeReplayStats& stats() const;

  struct Shared;  // frames seen so far, gateway readers, sender replays

 private:
  CooperativeReplayer(std::shared_ptr<Shared> shared, std::string self);
  std::shared_ptr<Shared> shared_;
  std::string self_;
  bool top_level_ = false;  // the replay the user asked for (owns the sender replays)
  uint64_t sequence_ = 0;   // of the last frame this host's guest transmitted
};

}  // namespace vmm::net
