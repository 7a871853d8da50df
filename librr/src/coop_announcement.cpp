#include "librr/coop_announcement.h"

#include <fmt/format.h>

#include "librr/bytes.h"
#include "librr/error.h"

namespace librr {
namespace {

// magic u32, version u8, kind u8, name length u8, counter u64, frame count u16
constexpr size_t kFixedHeader = 4 + 1 + 1 + 1 + 8 + 2;
constexpr size_t kFrameEntry = 8 + sizeof(Digest);

}  // namespace

size_t max_frames_per_announcement(size_t sender_name_length) {
  return (kMaxAnnouncementSize - kFixedHeader - sender_name_length - kAnnouncementTagSize) /
         kFrameEntry;
}

std::vector<uint8_t> encode_announcement(const Announcement& message, const Key& key) {
  if (message.sender.empty() || message.sender.size() > 255)
    throw Error(
        fmt::format("announcement sender name '{}' must be 1 to 255 bytes", message.sender));
  if (message.frames.size() > max_frames_per_announcement(message.sender.size()))
    throw Error(fmt::format("{} frames do not fit one announcement (max {})", message.frames.size(),
                            max_frames_per_announcement(message.sender.size())));
  ByteWriter w;
  w.u32(kAnnouncementMagic);
  w.u8(kAnnouncementVersion);
  w.u8(static_cast<uint8_t>(message.kind));
  w.u8(static_cast<uint8_t>(message.sender.size()));
  w.raw(message.sender.data(), message.sender.size());
  w.u64(message.counter);
  w.u16(static_cast<uint16_t>(message.frames.size()));
  for (const auto& frame : message.frames) {
    w.u64(frame.sequence);
    w.raw(frame.digest.data(), frame.digest.size());
  }
  auto tag = mac256(key, w.data());
  w.raw(tag.data(), tag.size());
  return w.take();
}

DecodedAnnouncement decode_announcement(std::span<const uint8_t> datagram) {
  if (datagram.size() > kMaxAnnouncementSize)
    throw FormatError(
        fmt::format("announcement of {} bytes exceeds {}", datagram.size(), kMaxAnnouncementSize));
  if (datagram.size() < kAnnouncementTagSize)
    throw FormatError("announcement shorter than its tag", 0);
  auto body = datagram.first(datagram.size() - kAnnouncementTagSize);
  ByteReader r(body, "announcement");
  if (r.u32() != kAnnouncementMagic) throw FormatError("announcement: bad magic", 0);
  if (uint8_t version = r.u8(); version != kAnnouncementVersion)
    throw FormatError(fmt::format("announcement: unsupported version {}", version), 4);
  DecodedAnnouncement decoded;
  uint8_t kind = r.u8();
  if (kind != static_cast<uint8_t>(AnnouncementKind::kHostFrames) &&
      kind != static_cast<uint8_t>(AnnouncementKind::kGatewayFrames))
    throw FormatError(fmt::format("announcement: unknown kind {}", kind), 5);
  decoded.message.kind = static_cast<AnnouncementKind>(kind);
  uint8_t name_length = r.u8();
  if (name_length == 0) throw FormatError("announcement: empty sender name", 6);
  auto name = r.raw(name_length);
  decoded.message.sender.assign(name.begin(), name.end());
  decoded.message.counter = r.u64();
  uint16_t count = r.u16();
  if (size_t{count} * kFrameEntry != r.remaining())
    throw FormatError(fmt::format("announcement: {} frames need {} bytes, {} present", count,
                                  size_t{count} * kFrameEntry, r.remaining()),
                      static_cast<int64_t>(r.position()));
  decoded.message.frames.resize(count);
  for (auto& frame : decoded.message.frames) {
    frame.sequence = r.u64();
    r.raw_into(frame.digest.data(), frame.digest.size());
  }
  r.expect_end();
  decoded.authenticated = body;
  std::copy(datagram.end() - kAnnouncementTagSize, datagram.end(), decoded.tag.begin());
  return decoded;
}

bool AnnouncementReplayWindow::fresh(uint64_t counter) const {
  if (!any_ || counter > highest_) return true;
  uint64_t age = highest_ - counter;
  return age < 64 && (seen_ & (uint64_t{1} << age)) == 0;
}

bool AnnouncementReplayWindow::accept(uint64_t counter) {
  if (!fresh(counter)) return false;
  if (!any_) {
    any_ = true;
    highest_ = counter;
    seen_ = 1;
  } else if (counter > highest_) {
    uint64_t shift = counter - highest_;
    seen_ = shift >= 64 ? 0 : seen_ << shift;
    seen_ |= 1;
    highest_ = counter;
  } else {
    seen_ |= uint64_t{1} << (highest_ - counter);
  }
  return true;
}

std::string_view to_string(AnnouncementVerdict verdict) {
  switch (verdict) {
    case AnnouncementVerdict::kAccepted:
      return "accepted";
    case AnnouncementVerdict::kMalformed:
      return "malformed";
    case AnnouncementVerdict::kUnknownSender:
      return "unknown sender";
    case AnnouncementVerdict::kBadTag:
      return "bad authentication tag";
    case AnnouncementVerdict::kReplayed:
      return "replayed or too old";
    case AnnouncementVerdict::kWrongKind:
      return "wrong kind for sender";
  }
  return "?";
}

AnnouncementVerdict AnnouncementVerifier::verify(std::span<const uint8_t> datagram,
                                                 Announcement* accepted) {
  DecodedAnnouncement decoded;
  try {
    decoded = decode_announcement(datagram);
  } catch (const FormatError&) {
    return AnnouncementVerdict::kMalformed;
  }
  const auto& sender = decoded.message.sender;
  const Key* key = nullptr;
  bool from_gateway = sender == registry_->gateway_name();
  if (from_gateway) {
    key = &registry_->gateway_key();
  } else if (const auto* host = registry_->find(sender)) {
    key = &host->key;
  } else {
    return AnnouncementVerdict::kUnknownSender;
  }
  // Authenticate before looking at anything else the sender claims.
  if (!digests_equal(mac256(*key, decoded.authenticated), decoded.tag))
    return AnnouncementVerdict::kBadTag;
  bool gateway_kind = decoded.message.kind == AnnouncementKind::kGatewayFrames;
  if (gateway_kind != from_gateway) return AnnouncementVerdict::kWrongKind;
  if (!windows_[sender].accept(decoded.message.counter)) return AnnouncementVerdict::kReplayed;
  if (accepted) *accepted = std::move(decoded.message);
  return AnnouncementVerdict::kAccepted;
}

AnnouncementSender::AnnouncementSender(AnnouncementKind kind, std::string name, Key key,
                                       uint64_t first_counter)
    : kind_(kind), name_(std::move(name)), key_(std::move(key)), counter_(first_counter) {}

std::vector<std::vector<uint8_t>> AnnouncementSender::encode(
    std::span<const AnnouncedFrame> frames) {
  std::vector<std::vector<uint8_t>> datagrams;
  size_t per_message = max_frames_per_announcement(name_.size());
  for (size_t start = 0; start < frames.size(); start += per_message) {
    auto chunk = frames.subspan(start, std::min(per_message, frames.size() - start));
    Announcement message{kind_, name_, counter_++, {chunk.begin(), chunk.end()}};
    datagrams.push_back(encode_announcement(message, key_));
  }
  return datagrams;
}

}  // namespace librr
