#include "net/cooperative_cli.h"

#include <fmt/format.h>

#include <filesystem>

#include "devices/virtio_net.h"
#include "librr/error.h"
#include "librr/recording.h"
#include "machine/machine.h"

namespace vmm::net {

void add_cooperative_record_options(CLI::App& command, CooperativeRecordOptions& options) {
  command.add_option("--coop-registry", options.registry,
                     "cooperative logging: registry of cooperating hosts and their keys "
                     "(schemas/gateway-protocol.md); needs --coop-name");
  command.add_option("--coop-name", options.name,
                     "this host's name in the registry (its key authenticates our announcements)");
  command.add_option("--announce", options.announce_to,
                     "ADDR:PORT receiving announcements of the frames the guest sends "
                     "(the gateway, other recorders); repeatable");
  command.add_option("--coop-listen", options.listen_port,
                     "UDP port where other hosts' and the gateway's announcements arrive");
  command
      .add_option("--coop-wait-ms", options.host_wait_ms,
                  "longest wait for the announcement of a frame claiming a cooperating host")
      ->default_val(250);
  command
      .add_option("--coop-gateway-wait-ms", options.gateway_wait_ms,
                  "longest wait for the gateway's announcement of any other frame")
      ->default_val(0);
}

std::shared_ptr<CooperativeRecorder> enable_cooperative_recording(
    const CooperativeRecordOptions& options, Machine& machine, librr::Manifest& manifest) {
  if (!options.enabled()) {
    if (!options.name.empty() || !options.announce_to.empty() || options.listen_port != 0)
      throw librr::Error("--coop-name/--announce/--coop-listen need --coop-registry");
    return nullptr;
  }
  if (options.name.empty()) throw librr::Error("--coop-registry needs --coop-name");
  if (!machine.net()) throw librr::Error("cooperative logging needs a network device (--net)");
  CooperativeRecordSettings settings;
  settings.registry = options.registry;
  settings.name = options.name;
  settings.announce_to = options.announce_to;
  settings.listen_port = options.listen_port;
  settings.host_wait = std::chrono::milliseconds(options.host_wait_ms);
  settings.gateway_wait = std::chrono::milliseconds(options.gateway_wait_ms);
  auto recorder = std::make_shared<CooperativeRecorder>(settings);
  machine.net()->set_cooperation(recorder);
  manifest.guest[kManifestCooperativeName] = options.name;
  return recorder;
}

std::string describe(const CooperativeRecordStats& s) {
  return fmt::format(
      "cooperative logging: {} frames sent and announced ({} announcement sends failed); "
      "received: {} as host references, {} as gateway references, {} in full, {} in full and "
      "flagged (unauthenticated cooperating source); {} waits ({} timed out); announcements "
      "{} accepted, {} rejected",
      s.transmitted, s.announce_send_failures, s.host_references, s.gateway_references, s.full,
      s.flagged, s.waits, s.waits_timed_out, s.announcements_accepted, s.announcements_rejected);
}

void add_cooperative_replay_options(CLI::App& command, CooperativeReplayOptions& options) {
  command.add_option("--resolve-from", options.resolve_from,
                     "where referenced frames come from: an rr-gateway log directory, a "
                     "cooperating host's recording, or NAME=RECORDING; repeatable");
}

std::shared_ptr<CooperativeReplayer> enable_cooperative_replay(
    const CooperativeReplayOptions& options, Machine& machine, const librr::Manifest& manifest,
    const std::optional<librr::Key>& key) {
  auto self = manifest.guest.find(kManifestCooperativeName);
  if (options.resolve_from.empty() && self == manifest.guest.end()) return nullptr;
  if (!machine.net()) return nullptr;
  CooperativeReplaySettings settings;
  if (self != manifest.guest.end()) settings.self = self->second;
  settings.key = key;
  for (const auto& source : options.resolve_from) {
    auto equals = source.find('=');
    if (equals != std::string::npos) {
      settings.recordings[source.substr(0, equals)] = source.substr(equals + 1);
      continue;
    }
    if (std::filesystem::exists(std::filesystem::path(source) / "index.sqlite")) {
      settings.gateway_logs.emplace_back(source);
      continue;
    }
    librr::RecordingDir recording = librr::RecordingDir::open(source);
    auto name = recording.manifest().guest.find(kManifestCooperativeName);
    if (name == recording.manifest().guest.end())
      throw librr::Error(fmt::format(
          "--resolve-from {}: neither a gateway log (no index.sqlite) nor a cooperative "
          "recording (its manifest names no host); use NAME={}",
          source, source));
    settings.recordings[name->second] = source;
  }
  auto replayer = std::make_shared<CooperativeReplayer>(settings);
  machine.net()->set_cooperation(replayer);
  return replayer;
}

}  // namespace vmm::net
