#include "librr/events.h"

#include <algorithm>

#include "librr/compress.h"
#include "librr/error.h"

namespace librr {
namespace {

// A zstd frame of a 4 KiB page is never this big; a larger claim is corruption
// and must not drive an allocation.
constexpr uint64_t kMaxPageSize = uint64_t{1} << 21;

Digest256 get_digest(ByteReader& r) { return r.pod<Digest256>(); }

enum class MemoryKind : uint8_t { digest = 0, delta = 1 };

struct Encoder {
  ByteWriter& w;
  void operator()(const InterruptDelivery& e) {
    encode_position(w, e.pos);
    w.u8(e.vector);
    w.u32(e.source_line);
  }
  void operator()(const AsyncPosition& e) {
    encode_position(w, e.pos);
    w.u32(e.vcpu_state_format);
    w.bytes(e.vcpu_state);
    if (auto* digest = std::get_if<MemoryDigest>(&e.memory)) {
      w.u8(static_cast<uint8_t>(MemoryKind::digest));
      w.pod(digest->digest);
    } else {
      const auto& delta = std::get<MemoryDelta>(e.memory);
      w.u8(static_cast<uint8_t>(MemoryKind::delta));
      w.u64(delta.reset_landmark);
      w.u32(static_cast<uint32_t>(delta.pages.size()));
      for (const auto& page : delta.pages) {
        w.u64(page.gfn);
        w.bytes(page.compressed_xor);
      }
    }
  }
  void operator()(const Input& e) {
    encode_position(w, e.pos);
    w.string(e.channel);
    w.bytes(e.data);
  }
  void operator()(const StateDigest& e) {
    encode_position(w, e.pos);
    w.pod(e.registers);
    w.pod(e.memory);
    w.boolean(e.detail.has_value());
    if (e.detail) w.string(*e.detail);
  }
  void operator()(const CheckpointRef& e) {
    encode_position(w, e.pos);
    w.string(e.file_name);
    w.pod(e.digest);
  }
  void operator()(const EndOfRecording& e) {
    encode_position(w, e.pos);
    w.string(e.reason);
    w.u32(static_cast<uint32_t>(e.exit_status));
  }
};

AsyncPosition decode_async(ByteReader& r) {
  AsyncPosition e;
  e.pos = decode_position(r);
  e.vcpu_state_format = r.u32();
  e.vcpu_state = r.bytes_vec();
  uint8_t kind = r.u8();
  if (kind == static_cast<uint8_t>(MemoryKind::digest)) {
    e.memory = MemoryDigest{get_digest(r)};
  } else if (kind == static_cast<uint8_t>(MemoryKind::delta)) {
    MemoryDelta delta;
    delta.reset_landmark = r.u64();
    uint32_t count = r.u32();
    // Each page entry takes at least 12 bytes: a count beyond that is a lie.
    constexpr size_t kMinPageEntry = 12;
    if (count > r.remaining() / kMinPageEntry)
      throw FormatError("AsyncPosition: memory delta claims " + std::to_string(count) +
                            " pages but only " + std::to_string(r.remaining()) + " bytes remain",
                        static_cast<int64_t>(r.position()));
    delta.pages.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
      PageDelta page;
      page.gfn = r.u64();
      page.compressed_xor = r.bytes_vec();
      delta.pages.push_back(std::move(page));
    }
    e.memory = std::move(delta);
  } else {
    throw FormatError("AsyncPosition: unknown memory kind " + std::to_string(kind),
                      static_cast<int64_t>(r.position() - 1));
  }
  return e;
}

}  // namespace

EventType event_type(const Event& event) { return static_cast<EventType>(event.index() + 1); }

std::string_view event_type_name(EventType type) {
  switch (type) {
    case EventType::interrupt_delivery:
      return "InterruptDelivery";
    case EventType::async_position:
      return "AsyncPosition";
    case EventType::input:
      return "Input";
    case EventType::state_digest:
      return "StateDigest";
    case EventType::checkpoint_ref:
      return "CheckpointRef";
    case EventType::end_of_recording:
      return "EndOfRecording";
  }
  return "unknown";
}

const Position& event_position(const Event& event) {
  return std::visit([](const auto& e) -> const Position& { return e.pos; }, event);
}

void encode_event(const Event& event, ByteWriter& out) {
  out.u8(static_cast<uint8_t>(event_type(event)));
  std::visit(Encoder{out}, event);
}

std::vector<uint8_t> encode_event(const Event& event) {
  ByteWriter w;
  encode_event(event, w);
  return w.take();
}

// Records are decoded in place (emplace, no temporaries): this runs once per
// record on the read path.
Event decode_event(std::span<const uint8_t> data) {
  ByteReader r(data, "event record");
  uint8_t tag = r.u8();
  Event event;
  switch (static_cast<EventType>(tag)) {
    case EventType::interrupt_delivery: {
      auto& e = event.emplace<InterruptDelivery>();
      e.pos = decode_position(r);
      e.vector = r.u8();
      e.source_line = r.u32();
      break;
    }
    case EventType::async_position:
      event.emplace<AsyncPosition>(decode_async(r));
      break;
    case EventType::input: {
      auto& e = event.emplace<Input>();
      e.pos = decode_position(r);
      e.channel = r.string();
      e.data = r.bytes_vec();
      break;
    }
    case EventType::state_digest: {
      auto& e = event.emplace<StateDigest>();
      e.pos = decode_position(r);
      e.registers = get_digest(r);
      e.memory = get_digest(r);
      uint8_t has_detail = r.u8();
      if (has_detail > 1)
        throw FormatError("StateDigest: detail flag must be 0 or 1, got " +
                          std::to_string(has_detail));
      if (has_detail) e.detail = r.string();
      break;
    }
    case EventType::checkpoint_ref: {
      auto& e = event.emplace<CheckpointRef>();
      e.pos = decode_position(r);
      e.file_name = r.string();
      e.digest = get_digest(r);
      break;
    }
    case EventType::end_of_recording: {
      auto& e = event.emplace<EndOfRecording>();
      e.pos = decode_position(r);
      e.reason = r.string();
      e.exit_status = static_cast<int32_t>(r.u32());
      break;
    }
    default:
      throw FormatError("unknown event record tag " + std::to_string(tag) +
                            " (this log needs a newer librr, or it is corrupt)",
                        0);
  }
  r.expect_end();
  return event;
}

std::optional<PageDelta> make_page_delta(uint64_t gfn, std::span<const uint8_t> shadow,
                                         std::span<const uint8_t> current,
                                         UnchangedPages unchanged) {
  if (shadow.size() != current.size())
    throw Error("make_page_delta: shadow page has " + std::to_string(shadow.size()) +
                " bytes, current page " + std::to_string(current.size()));
  if (std::equal(shadow.begin(), shadow.end(), current.begin())) {
    if (unchanged == UnchangedPages::kOmit) return std::nullopt;
    return PageDelta{gfn, {}};
  }
  std::vector<uint8_t> xored(shadow.size());
  for (size_t i = 0; i < xored.size(); ++i) xored[i] = shadow[i] ^ current[i];
  return PageDelta{gfn, zstd_compress(xored, 1)};
}

void apply_page_delta(const PageDelta& delta, std::span<uint8_t> page) {
  if (delta.compressed_xor.empty()) return;  // the page equals its shadow
  std::vector<uint8_t> xored;
  try {
    xored = zstd_decompress(delta.compressed_xor, page.size(), kMaxPageSize);
  } catch (const FormatError& e) {
    throw FormatError("page delta for gfn " + std::to_string(delta.gfn) + ": " + e.what());
  }
  for (size_t i = 0; i < page.size(); ++i) page[i] ^= xored[i];
}

MemoryDelta make_memory_delta(uint64_t reset_landmark, std::span<const PageChange> pages,
                              UnchangedPages unchanged) {
  MemoryDelta delta{reset_landmark, {}};
  for (const auto& change : pages)
    if (auto page = make_page_delta(change.gfn, change.shadow, change.current, unchanged))
      delta.pages.push_back(std::move(*page));
  return delta;
}

}  // namespace librr
