#include "gateway_daemon.h"

#include <fmt/format.h>
#include <linux/if_packet.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "asio.h"
#include "classifier.h"
#include "frame_log.h"
#include "librr/coop_announcement.h"
#include "librr/coop_reference.h"
#include "librr/coop_registry.h"
#include "log_writer.h"
#include "packet_ring.h"

namespace gateway {

namespace asio = boost::asio;

namespace {

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

template <class... Args>
void log(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stderr, "rr-gateway: {}\n", fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stderr);
}

pcapng::FlagReception reception_of(uint8_t packet_type) {
  switch (packet_type) {
    case PACKET_HOST:
      return pcapng::FlagReception::kUnicast;
    case PACKET_BROADCAST:
      return pcapng::FlagReception::kBroadcast;
    case PACKET_MULTICAST:
      return pcapng::FlagReception::kMulticast;
    case PACKET_OTHERHOST:
      return pcapng::FlagReception::kPromiscuous;
    default:
      return pcapng::FlagReception::kUnspecified;
  }
}

asio::ip::udp::endpoint parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    throw librr::FormatError(fmt::format("announce_publish '{}': expected address:port", text));
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = std::stoi(text.substr(colon + 1));
  return {asio::ip::make_address(host), static_cast<uint16_t>(port)};
}

struct Counters {
  uint64_t frames_seen = 0;
  uint64_t by_direction[4] = {};
  uint64_t logged = 0;
  uint64_t upstream_copies = 0;  // incoming frames seen where they are not logged
  uint64_t malformed = 0;        // runts, truncated or malformed IP headers
  uint64_t oversized = 0;
  uint64_t capture_truncated = 0;
  uint64_t unwritten_after_stop = 0;
  uint64_t queue_full_drops = 0;  // frames dropped because the writer fell too far behind
  uint64_t unauthenticated_cooperating_sources = 0;
  uint64_t announcements[6] = {};  // by librr::AnnouncementVerdict
};

}  // namespace

struct GatewayDaemon::State {
  struct Capture {
    std::unique_ptr<PacketRing> ring;
    std::unique_ptr<asio::posix::stream_descriptor> readable;
    InterfaceRole role = InterfaceRole::kLan;
    uint32_t id = 0;
    uint64_t drops_seen = 0;
    uint64_t drops_to_report = 0;  // go into the next logged frame's epb_dropcount
    uint64_t started_ns = 0;
    FrameBatch batch;  // frames of the current ring walk, handed to the writer afterwards
  };

  std::function<GatewayConfig()> load_config;
  GatewayConfig config;
  asio::io_context io;
  asio::signal_set signals{io, SIGINT, SIGTERM, SIGHUP};
  asio::steady_timer housekeeping{io};
  std::vector<Capture> captures;
  std::unique_ptr<Classifier> classifier;
  std::unique_ptr<LogWriter> writer;
  // Ring counters for the ISBs, read by the writer thread when it closes a segment.
  std::mutex statistics_mutex;
  std::vector<pcapng::InterfaceStatistics> statistics_snapshot;
  Counters counters;
  bool failed = false;
  bool stopping = false;
  bool finished = false;
  int exit_code = kExitOk;

  // Cooperating hosts (optional).
  std::unique_ptr<librr::CoopRegistry> registry;
  std::unique_ptr<librr::AnnouncementVerifier> verifier;
  std::unique_ptr<librr::FrameReferenceResolver> resolver;
  std::unique_ptr<librr::AnnouncementSender> publisher;
  std::optional<asio::ip::udp::socket> announce_socket;
  std::vector<asio::ip::udp::endpoint> publish_to;
  std::vector<librr::AnnouncedFrame> to_publish;
  std::array<uint8_t, 2048> datagram{};
  asio::ip::udp::endpoint datagram_from;

  void start();
  void configure_cooperation();
  void wait_readable(Capture& capture);
  void drain(Capture& capture);
  void handle_frame(Capture& capture, const CapturedFrame& frame);
  void schedule_housekeeping();
  void housekeep();
  void publish();
  void receive_announcement();
  void wait_signal();
  void reload();
  void drain_everything();
  void shutdown();
  void fail_loudly(const std::string& error);
  void finish_after_failure();
  void print_summary();
  std::vector<pcapng::InterfaceStatistics> interface_statistics(uint64_t now_ns);
};

GatewayDaemon::GatewayDaemon(std::function<GatewayConfig()> load_config)
    : state_(std::make_unique<State>()) {
  state_->load_config = std::move(load_config);
}

GatewayDaemon::~GatewayDaemon() = default;

int GatewayDaemon::run() {
  try {
    state_->config = state_->load_config();
  } catch (const std::exception& e) {
    log("configuration error: {}", e.what());
    return kExitConfigError;
  }
  try {
    state_->start();
  } catch (const WriteError& e) {
    state_->fail_loudly(e.what());
    state_->io.run();  // runs finish_after_failure()
    return kExitWriteError;
  } catch (const std::exception& e) {
    log("cannot start: {}", e.what());
    return kExitCaptureError;
  }
  state_->io.run();
  return state_->exit_code;
}

void GatewayDaemon::State::start() {
  std::vector<Prefix> prefixes;
  for (const auto& text : config.lan_prefixes) prefixes.push_back(Prefix::parse(text));
  bool lan_captured = false;
  for (const auto& interface : config.interfaces)
    lan_captured |= interface.role == InterfaceRole::kLan;
  classifier = std::make_unique<Classifier>(std::move(prefixes), lan_captured);

  RingSettings ring_settings{config.ring_block_size, config.ring_block_count,
                             config.ring_block_timeout_ms, config.snaplen};
  std::vector<LoggedInterface> logged;
  uint64_t now = realtime_ns();
  for (const auto& interface : config.interfaces) {
    Capture capture;
    capture.ring = std::make_unique<PacketRing>(interface.name, ring_settings);
    capture.role = interface.role;
    capture.id = static_cast<uint32_t>(captures.size());
    capture.started_ns = now;
    // The descriptor gets its own duplicate: asio closes it, the ring closes the original.
    capture.readable =
        std::make_unique<asio::posix::stream_descriptor>(io, ::dup(capture.ring->fd()));
    logged.push_back({interface.name, capture.ring->snaplen()});
    captures.push_back(std::move(capture));
  }
  FrameLogSettings log_settings{config.out_dir, config.segment_size, config.segment_seconds,
                                config.compression_level};
  for (const auto& capture : captures)
    statistics_snapshot.push_back({capture.id, now, capture.started_ns, 0, 0});
  auto frame_log = std::make_unique<FrameLog>(
      log_settings, logged, [this](uint64_t t) { return interface_statistics(t); }, now);
  uint64_t first_segment = frame_log->current_segment();
  writer = std::make_unique<LogWriter>(std::move(frame_log), [this](const std::string& message) {
    asio::post(io, [this, message] { fail_loudly(message); });
  });
  configure_cooperation();
  for (auto& capture : captures) {
    log("capturing on {} (role {}, snaplen {})", capture.ring->interface(), to_string(capture.role),
        capture.ring->snaplen());
    wait_readable(capture);
  }
  log("logging frames entering the LAN to {} (segment {}, {} bytes / {} s)",
      config.out_dir.string(), first_segment, config.segment_size, config.segment_seconds);
  wait_signal();
  schedule_housekeeping();
}

void GatewayDaemon::State::configure_cooperation() {
  registry.reset();
  verifier.reset();
  resolver.reset();
  publisher.reset();
  publish_to.clear();
  if (config.registry.empty()) return;
  registry = std::make_unique<librr::CoopRegistry>(librr::CoopRegistry::load_file(config.registry));
  verifier = std::make_unique<librr::AnnouncementVerifier>(*registry);
  resolver = std::make_unique<librr::FrameReferenceResolver>(*registry);
  publisher = std::make_unique<librr::AnnouncementSender>(librr::AnnouncementKind::kGatewayFrames,
                                                          registry->gateway_name(),
                                                          registry->gateway_key(), realtime_ns());
  for (const auto& text : config.announce_publish) publish_to.push_back(parse_endpoint(text));
  if (!announce_socket) {
    announce_socket.emplace(io, asio::ip::udp::v6());
    announce_socket->set_option(asio::ip::v6_only(false));
    if (config.announce_port != 0) {
      announce_socket->bind({asio::ip::address_v6::any(), config.announce_port});
      receive_announcement();
    }
  }
  log("registry {}: {} cooperating hosts, announcements on port {}", config.registry.string(),
      registry->hosts().size(), config.announce_port);
}

void GatewayDaemon::State::wait_readable(Capture& capture) {
  capture.readable->async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, &capture](const boost::system::error_code& ec) {
                                 if (ec || stopping) return;
                                 drain(capture);
                                 if (!stopping) wait_readable(capture);
                               });
}

void GatewayDaemon::State::drain(Capture& capture) {
  const auto& totals = capture.ring->refresh_counters();
  capture.drops_to_report += totals.dropped - capture.drops_seen;
  capture.drops_seen = totals.dropped;
  capture.ring->drain([&](const CapturedFrame& frame) { handle_frame(capture, frame); });
  {
    std::lock_guard lock(statistics_mutex);
    statistics_snapshot[capture.id].received = totals.received;
    statistics_snapshot[capture.id].dropped = totals.dropped;
  }
  if (capture.batch.empty()) return;
  size_t frames = capture.batch.entries.size();
  if (!writer->submit(std::move(capture.batch))) {
    // The writer is more than its queue limit behind (disk too slow): these
    // frames are lost; they are counted and reported as drops in the next EPB.
    counters.queue_full_drops += frames;
    capture.drops_to_report += frames;
    if (counters.queue_full_drops == frames)
      log("warning: log writer too slow, dropping frames (counted in queue_full_drops)");
  }
  capture.batch = FrameBatch{};
}

void GatewayDaemon::State::handle_frame(Capture& capture, const CapturedFrame& frame) {
  ++counters.frames_seen;
  auto parsed = librr::parse_ethernet_frame(frame.bytes, frame.wire_length);
  if (parsed.status == librr::EthernetFrameStatus::kRunt ||
      parsed.status == librr::EthernetFrameStatus::kTruncatedIp ||
      parsed.status == librr::EthernetFrameStatus::kMalformedIp)
    ++counters.malformed;
  counters.oversized += parsed.oversized;
  counters.capture_truncated += parsed.capture_truncated;
  auto classification = classifier->classify(parsed, capture.role, frame.link);
  ++counters.by_direction[static_cast<int>(classification.direction)];
  if (resolver && capture.role == InterfaceRole::kLan && frame.link == LinkDirection::kReceived) {
    auto reference = resolver->resolve(frame.bytes);
    if (reference.unauthenticated_cooperating_source &&
        ++counters.unauthenticated_cooperating_sources <= 10)
      log("warning: frame claims the address of cooperating host '{}' without an announcement",
          reference.claimed_host);
  }
  if (!classification.log) {
    counters.upstream_copies += classification.direction == Direction::kIncoming;
    return;
  }
  if (failed) {
    ++counters.unwritten_after_stop;
    return;
  }
  auto direction = frame.link == LinkDirection::kSent ? pcapng::FlagDirection::kOutbound
                                                      : pcapng::FlagDirection::kInbound;
  FrameToLog entry{capture.id,
                   frame.timestamp_ns,
                   frame.bytes,
                   frame.wire_length,
                   pcapng::epb_flags(direction, reception_of(frame.packet_type)),
                   capture.drops_to_report,
                   classification.direction};
  capture.batch.add(entry);
  capture.drops_to_report = 0;
  ++counters.logged;
}

std::vector<pcapng::InterfaceStatistics> GatewayDaemon::State::interface_statistics(
    uint64_t now_ns) {
  // Runs on the writer thread: uses the counters as of the last ring walk.
  std::lock_guard lock(statistics_mutex);
  auto result = statistics_snapshot;
  for (auto& stats : result) stats.timestamp_ns = now_ns;
  return result;
}

void GatewayDaemon::State::schedule_housekeeping() {
  housekeeping.expires_after(std::chrono::milliseconds(config.flush_ms));
  housekeeping.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping) return;
    housekeep();
    if (!stopping) schedule_housekeeping();
  });
}

void GatewayDaemon::State::housekeep() {
  writer->request_flush();  // the writer also rotates when the segment is due
  publish();
}

void GatewayDaemon::State::publish() {
  auto written = writer->take_written();
  if (!publisher || written.empty() || publish_to.empty()) return;
  to_publish = std::move(written);
  for (const auto& datagram_bytes : publisher->encode(to_publish))
    for (const auto& endpoint : publish_to) {
      boost::system::error_code ec;
      announce_socket->send_to(asio::buffer(datagram_bytes), endpoint, 0, ec);
      if (ec)
        log("warning: cannot publish digests to {}: {}", endpoint.address().to_string(),
            ec.message());
    }
  to_publish.clear();
}

void GatewayDaemon::State::receive_announcement() {
  announce_socket->async_receive_from(
      asio::buffer(datagram), datagram_from,
      [this](const boost::system::error_code& ec, size_t length) {
        if (stopping || ec == asio::error::operation_aborted) return;
        if (!ec && verifier) {
          librr::Announcement message;
          auto verdict = verifier->verify({datagram.data(), length}, &message);
          ++counters.announcements[static_cast<int>(verdict)];
          if (verdict == librr::AnnouncementVerdict::kAccepted)
            resolver->add(message);
          else if (counters.announcements[static_cast<int>(verdict)] <= 10)
            log("rejected announcement from {}: {}", datagram_from.address().to_string(),
                to_string(verdict));
        }
        receive_announcement();
      });
}

void GatewayDaemon::State::wait_signal() {
  signals.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      reload();
      if (!stopping) wait_signal();
      return;
    }
    log("signal {}: closing segment {} and exiting", signal, writer->current_segment());
    shutdown();
  });
}

void GatewayDaemon::State::drain_everything() {
  // Frames in the ring block the kernel is still filling become visible when it
  // retires the block (after ring_block_timeout_ms): wait for that, then drain.
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * config.ring_block_timeout_ms + 10));
  for (auto& capture : captures) drain(capture);
}

void GatewayDaemon::State::reload() {
  // Frames captured before the signal belong to the old segment and are
  // classified under the old configuration.
  drain_everything();
  if (failed) return;
  try {
    auto fresh = load_config();
    if (fresh.out_dir != config.out_dir || fresh.interfaces.size() != config.interfaces.size())
      log("warning: out and capture interfaces change only on restart; keeping the old ones");
    fresh.out_dir = config.out_dir;
    fresh.interfaces = config.interfaces;
    std::vector<Prefix> prefixes;
    for (const auto& text : fresh.lan_prefixes) prefixes.push_back(Prefix::parse(text));
    bool lan_captured = false;
    for (const auto& interface : fresh.interfaces)
      lan_captured |= interface.role == InterfaceRole::kLan;
    classifier = std::make_unique<Classifier>(std::move(prefixes), lan_captured);
    config = fresh;
    configure_cooperation();
    writer->update_limits(config.segment_size, config.segment_seconds);
    log("SIGHUP: configuration re-read");
  } catch (const std::exception& e) {
    log("SIGHUP: configuration error, keeping the previous one: {}", e.what());
  }
  uint64_t segment = writer->rotate_and_wait();
  if (!writer->failed()) log("SIGHUP: reopened, now writing segment {}", segment);
}

void GatewayDaemon::State::shutdown() {
  stopping = true;
  drain_everything();
  writer->close();  // writes everything queued; a failure is reported through fail_loudly
  if (!writer->failed()) publish();
  if (writer->failed()) {
    if (!failed) fail_loudly(writer->error_message());
    finish_after_failure();
    return;
  }
  print_summary();
  io.stop();
}

void GatewayDaemon::State::fail_loudly(const std::string& error) {
  if (failed) return;
  failed = true;
  exit_code = kExitWriteError;
  uint64_t lost = writer ? writer->frames_unwritten() : 0;
  log("!!! LOGGING STOPPED: {}", error);
  log("!!! {} frame(s) accepted for logging were NOT written; frames still arriving are counted",
      lost);
  // Best effort: the disk may be full, but creating an empty marker usually still works.
  std::ofstream marker(config.out_dir / kStoppedMarker);
  marker << "rr-gateway stopped logging: " << error << "\nunwritten frames: " << lost << "\n";
  // We may be inside a ring walk: finish from the event loop, not re-entrantly.
  asio::post(io, [this] { finish_after_failure(); });
}

void GatewayDaemon::State::finish_after_failure() {
  if (finished) return;
  finished = true;
  stopping = true;
  // Count the loggable frames already captured that can no longer be written.
  for (auto& capture : captures) drain(capture);
  if (writer) writer->close();  // counts what was still queued
  log("!!! unwritten frames: {} accepted by the log + {} captured after the failure",
      writer ? writer->frames_unwritten() : 0, counters.unwritten_after_stop);
  print_summary();
  io.stop();
}

void GatewayDaemon::State::print_summary() {
  uint64_t drops = 0, received = 0, incomplete = 0, late_copies = 0, ring_errors = 0;
  for (auto& capture : captures) {
    const RingCounters& ring = capture.ring->counters();
    drops += ring.dropped;
    received += ring.received;
    incomplete += ring.incomplete;
    late_copies += ring.late_copies;
    ring_errors += ring.malformed + ring.sequence_gaps;
  }
  const auto& c = counters;
  log("summary: frames_seen={} incoming={} outgoing={} internal={} external={} logged={} "
      "upstream_copies={} malformed={} oversized={} capture_truncated={} kernel_received={} "
      "kernel_drops={} queue_full_drops={} unwritten={} segment={} announcements_accepted={} "
      "announcements_rejected={} unauthenticated_cooperating_sources={} ring_incomplete={} "
      "ring_errors={} ring_late_copies={}",
      c.frames_seen, c.by_direction[0], c.by_direction[1], c.by_direction[2], c.by_direction[3],
      writer ? writer->frames_logged() : 0, c.upstream_copies, c.malformed, c.oversized,
      c.capture_truncated, received, drops, c.queue_full_drops,
      (writer ? writer->frames_unwritten() : 0) + c.unwritten_after_stop,
      writer ? writer->current_segment() : 0, c.announcements[0],
      c.announcements[1] + c.announcements[2] + c.announcements[3] + c.announcements[4] +
          c.announcements[5],
      c.unauthenticated_cooperating_sources, incomplete, ring_errors, late_copies);
}

}  // namespace gateway
