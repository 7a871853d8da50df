#include "net/cooperative_record.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "devices/virtio_fd.h"
#include "librr/coop_announcement.h"
#include "librr/coop_reference.h"
#include "librr/coop_registry.h"
#include "librr/error.h"

namespace vmm::net {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// "a.b.c.d:port", "[v6]:port" or "v6:port" as an IPv6 (v4-mapped) socket address.
sockaddr_in6 parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    throw librr::Error(fmt::format("announce address '{}': expected address:port", text));
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, nullptr, 10);
  if (port == 0 || port > 65535)
    throw librr::Error(fmt::format("announce address '{}': bad port", text));
  address.sin6_port = htons(static_cast<uint16_t>(port));
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    address.sin6_addr.s6_addr[10] = 0xff;
    address.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&address.sin6_addr.s6_addr[12], &v4, 4);
  } else if (inet_pton(AF_INET6, host.c_str(), &address.sin6_addr) != 1) {
    throw librr::Error(fmt::format("announce address '{}': not an IP address", text));
  }
  return address;
}

}  // namespace

struct CooperativeRecorder::State {
  CooperativeRecordSettings settings;
  librr::CoopRegistry registry;
  librr::AnnouncementVerifier verifier{registry};
  librr::FrameReferenceResolver resolver{registry};
  std::unique_ptr<librr::AnnouncementSender> sender;
  virtio::UniqueFd socket;
  std::vector<sockaddr_in6> receivers;
  uint64_t sequence = 0;  // of the last transmitted frame; the first is 1
  uint16_t bound_port = 0;

  explicit State(const CooperativeRecordSettings& s)
      : settings(s), registry(librr::CoopRegistry::load_file(s.registry)) {}
};

CooperativeRecorder::CooperativeRecorder(const CooperativeRecordSettings& settings)
    : state_(std::make_unique<State>(settings)) {
  State& s = *state_;
  const librr::CooperatingHost* self = s.registry.find(settings.name);
  if (!self)
    throw librr::Error(fmt::format("cooperative logging: host '{}' is not in the registry {}",
                                   settings.name, settings.registry.string()));
  // The counter starts at the wall clock: a restarted recorder never reuses one.
  s.sender = std::make_unique<librr::AnnouncementSender>(librr::AnnouncementKind::kHostFrames,
                                                         settings.name, self->key, realtime_ns());
  for (const auto& text : settings.announce_to) s.receivers.push_back(parse_endpoint(text));
  s.socket.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.socket) librr::throw_errno("cooperative logging: UDP socket");
  int off = 0;
  setsockopt(s.socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (settings.listen_port != 0) {
    // Announcements are read only when a frame arrives: a quiet guest must not
    // lose the ones that pile up meanwhile (as root the limit can be exceeded).
    int buffer = 8 << 20;
    if (setsockopt(s.socket.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0)
      setsockopt(s.socket.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_any;
    any.sin6_port = htons(settings.listen_port);
    if (::bind(s.socket.get(), reinterpret_cast<sockaddr*>(&any), sizeof any) != 0)
      librr::throw_errno(fmt::format("cooperative logging: bind UDP port {} for announcements",
                                     settings.listen_port));
    s.bound_port = settings.listen_port;
  }
}

CooperativeRecorder::~CooperativeRecorder() = default;

uint16_t CooperativeRecorder::listen_port() const { return state_->bound_port; }

void CooperativeRecorder::on_transmit(std::span<const uint8_t> frame) {
  State& s = *state_;
  librr::AnnouncedFrame announced{++s.sequence, librr::hash256(frame)};
  ++stats_.transmitted;
  for (const auto& datagram : s.sender->encode({&announced, 1}))
    for (const auto& receiver : s.receivers)
      if (::sendto(s.socket.get(), datagram.data(), datagram.size(), MSG_DONTWAIT,
                   reinterpret_cast<const sockaddr*>(&receiver), sizeof receiver) < 0)
        ++stats_.announce_send_failures;  // a receiver that is not up yet: it logs in full
}

void CooperativeRecorder::poll_announcements() {
  State& s = *state_;
  if (s.bound_port == 0) return;
  std::array<uint8_t, 2048> datagram;
  for (;;) {
    ssize_t length = ::recv(s.socket.get(), datagram.data(), datagram.size(), MSG_DONTWAIT);
    if (length < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN: nothing more (other errors: ICMP feedback of our own sends)
    }
    librr::Announcement message;
    auto verdict = s.verifier.verify({datagram.data(), static_cast<size_t>(length)}, &message);
    if (verdict == librr::AnnouncementVerdict::kAccepted) {
      s.resolver.add(message);
      ++stats_.announcements_accepted;
    } else {
      ++stats_.announcements_rejected;
    }
  }
}

LoggedFrame CooperativeRecorder::log_received(std::span<const uint8_t> frame) {
  State& s = *state_;
  poll_announcements();
  librr::FrameReference found = s.resolver.resolve(frame);
  if (found.kind == librr::FrameReferenceKind::kLogInFull && s.bound_port != 0) {
    auto wait = found.claimed_host.empty() ? s.settings.gateway_wait : s.settings.host_wait;
    if (wait.count() > 0) {
      ++stats_.waits;
      const auto deadline = Clock::now() + wait;
      while (found.kind == librr::FrameReferenceKind::kLogInFull) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          ++stats_.waits_timed_out;
          break;
        }
        pollfd readable{s.socket.get(), POLLIN, 0};
        ::poll(&readable, 1, static_cast<int>(left.count()) + 1);
        poll_announcements();
        found = s.resolver.resolve(frame);
      }
    }
  }
  LoggedFrame logged;
  switch (found.kind) {
    case librr::FrameReferenceKind::kSenderSequence:
    case librr::FrameReferenceKind::kGatewayDigest: {
      bool from_gateway = found.kind == librr::FrameReferenceKind::kGatewayDigest;
      ++(from_gateway ? stats_.gateway_references : stats_.host_references);
      FrameReference reference{from_gateway ? FrameOrigin::kGateway : FrameOrigin::kHost,
                               found.sender, found.sequence, found.digest,
                               static_cast<uint32_t>(frame.size())};
      logged.channel = kNetReferenceChannel;
      logged.data = encode_frame_reference(reference);
      return logged;
    }
    case librr::FrameReferenceKind::kLogInFull:
      break;
  }
  if (found.unauthenticated_cooperating_source) {
    ++stats_.flagged;
    logged.channel = kNetUnauthenticatedChannel;
  } else {
    ++stats_.full;
    logged.channel = "net0";
  }
  logged.data.assign(frame.begin(), frame.end());
  return logged;
}

std::vector<uint8_t> CooperativeRecorder::resolve(const FrameReference& reference) {
  throw librr::Error(
      fmt::format("frame reference to {} #{} while recording: references are resolved in replay",
                  reference.sender, reference.sequence));
}

}  // namespace vmm::net
