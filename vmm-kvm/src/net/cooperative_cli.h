#pragma once
// Command-line options of cooperative logging for `rr-vmm record` and
// `rr-vmm replay` (docs/gateway.md "Cooperative recording"), and turning them
// into a Cooperation attached to the machine's virtio-net.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "net/cooperative_record.h"
#include "net/cooperative_replay.h"

namespace librr {
struct Manifest;
}

namespace vmm {
class Machine;
}

namespace vmm::net {

// The manifest's guest entry naming the recorded host (its registry name).
inline constexpr const char* kManifestCooperativeName = "cooperative_name";

struct CooperativeRecordOptions {
  std::string registry;
  std::string name;
  std::vector<std::string> announce_to;
  uint16_t listen_port = 0;
  unsigned host_wait_ms = 250;
  unsigned gateway_wait_ms = 0;
  bool enabled() const { return !registry.empty(); }
};

void add_cooperative_record_options(CLI::App& command, CooperativeRecordOptions& options);
// Attaches a CooperativeRecorder to the machine's virtio-net and names the
// host in the manifest. Returns null if cooperative logging is off. Throws
// librr::Error on a bad registry/name or a machine without virtio-net.
std::shared_ptr<CooperativeRecorder> enable_cooperative_recording(
    const CooperativeRecordOptions& options, Machine& machine, librr::Manifest& manifest);
std::string describe(const CooperativeRecordStats& stats);

struct CooperativeReplayOptions {
  // rr-gateway output directories, recordings (their manifest names the host)
  // or NAME=RECORDING.
  std::vector<std::string> resolve_from;
};

void add_cooperative_replay_options(CLI::App& command, CooperativeReplayOptions& options);
// Attaches a CooperativeReplayer when the recording was made cooperatively or
// sources are given. Returns null otherwise.
std::shared_ptr<CooperativeReplayer> enable_cooperative_replay(
    const CooperativeReplayOptions& options, Machine& machine, const librr::Manifest& manifest,
    const std::optional<librr::Key>& key);

}  // namespace vmm::net
