#include "net/cooperation.h"

#include <fmt/format.h>

#include "librr/bytes.h"
#include "librr/error.h"

namespace vmm::net {
namespace {
constexpr uint8_t kReferenceVersion = 1;
}

std::vector<uint8_t> encode_frame_reference(const FrameReference& reference) {
  if (reference.sender.empty() || reference.sender.size() > 255)
    throw librr::Error(
        fmt::format("frame reference: sender name of {} bytes (1..255)", reference.sender.size()));
  librr::ByteWriter out;
  out.u8(kReferenceVersion);
  out.u8(static_cast<uint8_t>(reference.origin));
  out.u8(static_cast<uint8_t>(reference.sender.size()));
  out.raw(reference.sender.data(), reference.sender.size());
  out.u64(reference.sequence);
  out.raw(reference.digest.data(), reference.digest.size());
  out.u32(reference.length);
  return out.take();
}

FrameReference decode_frame_reference(std::span<const uint8_t> bytes) {
  librr::ByteReader in(bytes, "frame reference");
  if (uint8_t version = in.u8(); version != kReferenceVersion)
    throw librr::FormatError(
        fmt::format("frame reference: version {} (expected {})", version, kReferenceVersion), 0);
  FrameReference reference;
  uint8_t origin = in.u8();
  if (origin != static_cast<uint8_t>(FrameOrigin::kHost) &&
      origin != static_cast<uint8_t>(FrameOrigin::kGateway))
    throw librr::FormatError(fmt::format("frame reference: origin {} (expected 1 or 2)", origin),
                             1);
  reference.origin = static_cast<FrameOrigin>(origin);
  uint8_t name_length = in.u8();
  if (name_length == 0) throw librr::FormatError("frame reference: empty sender name", 2);
  auto name = in.raw(name_length);
  reference.sender.assign(name.begin(), name.end());
  reference.sequence = in.u64();
  in.raw_into(reference.digest.data(), reference.digest.size());
  reference.length = in.u32();
  in.expect_end();
  return reference;
}

}  // namespace vmm::net
