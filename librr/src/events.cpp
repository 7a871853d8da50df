#include "librr/events.h"

#include <algorithm>
#include <functional>
#include <type_traits>

#include "librr/compress.h"
#include "librr/error.h"
#include "log_compact.h"

namespace librr {
namespace {

// The wire byte after the vCPU state: a digest, a delta with its base
// (DeltaBase's values; previous_position since format 2.1), or a digest of
// listed pages for replay to search with (since format 2.3).
enum class MemoryKind : uint8_t {
  digest = 0,
  delta = 1,
  delta_from_previous_position = 2,
  pages_digest = 3,
  kernel_return = 4,                // since format 2.8
  searched_stop = 5,                // since format 2.9
  searched_stop_32 = 6,             // since format 2.10: 32-bit hashes
  searched_stop_one_hash = 7,       // since format 2.11: one 32-bit hash of registers and pages
  kernel_return_32 = 8,             // since format 2.11: a 32-bit registers hash
  searched_stop_implied_pages = 9,  // since format 2.12: kind 7 without the page listing
  delta_from_return_to_user = 10,   // since format 2.13: DeltaBase::return_to_user
};

MemoryKind kind_of(const SearchedStop& stop) {
  if (stop.pages_implied) return MemoryKind::searched_stop_implied_pages;
  if (stop.one_hash) return MemoryKind::searched_stop_one_hash;
  return stop.hash_bits == 32 ? MemoryKind::searched_stop_32 : MemoryKind::searched_stop;
}

MemoryKind kind_of(DeltaBase base) {
  switch (base) {
    case DeltaBase::previous_position:
      return MemoryKind::delta_from_previous_position;
    case DeltaBase::return_to_user:
      return MemoryKind::delta_from_return_to_user;
    case DeltaBase::shadow:
      break;
  }
  return MemoryKind::delta;
}

// How a listing of gfns is stored: its count as a u32 and each gfn
// (PagesDigest), or each one's distance from the one before, the first's
// from 0 (SearchedStop, kind 5), as u64s; or count and distances as
// varints (kind 6: ~2 bytes less per stop after compression).
enum class GfnCoding { absolute, distance, varint_distance };

void write_varint(ByteWriter& w, uint64_t value) {
  std::vector<uint8_t> code;
  logcompact::put_varint(code, value);
  w.raw(code.data(), code.size());
}

// A searched stop's listing: as u64 distances (kind 5, 64-bit hashes) or
// varints (kinds 6 and 7, 32-bit hashes).
GfnCoding gfn_coding_of(const SearchedStop& stop) {
  return stop.hash_bits == 32 ? GfnCoding::varint_distance : GfnCoding::distance;
}

uint64_t read_varint(ByteReader& r, const char* what) {
  size_t length = 0;
  const uint64_t value = logcompact::get_varint(r.unread(), length, what);
  r.raw(length);
  return value;
}

struct Encoder {
  ByteWriter& w;
  // A pages digest's hash and listing (memory kinds 3 and 5). A reader
  // refuses an unordered listing: refuse to write one.
  void write_pages_digest(const Position& pos, const PagesDigest& pages, GfnCoding coding,
                          uint8_t hash_bits = 64) {
    if (std::adjacent_find(pages.gfns.begin(), pages.gfns.end(), std::greater_equal<>()) !=
        pages.gfns.end())
      throw Error("AsyncPosition at " + pos.to_string() +
                  ": pages digest gfns must be strictly ascending");
    write_hash(pos, pages.xxh3, hash_bits);
    const bool varints = coding == GfnCoding::varint_distance;
    if (varints)
      write_varint(w, pages.gfns.size());
    else
      w.u32(static_cast<uint32_t>(pages.gfns.size()));
    // As distances (SearchedStop), each from the gfn before (the first from
    // 0): mostly small numbers, which the chunk's zstd packs into a byte or two.
    uint64_t previous = 0;
    for (const uint64_t gfn : pages.gfns) {
      const uint64_t stored = coding == GfnCoding::absolute ? gfn : gfn - previous;
      if (varints)
        write_varint(w, stored);
      else
        w.u64(stored);
      previous = gfn;
    }
  }
  void write_hash(const Position& pos, uint64_t hash, uint8_t hash_bits) {
    if (hash_bits == 64) return w.u64(hash);
    if (hash_bits != 32 || hash > 0xffffffffull)
      throw Error("AsyncPosition at " + pos.to_string() + ": a " + std::to_string(hash_bits) +
                  "-bit searched stop hash (64, or 32 below 2^32, expected)");
    w.u32(static_cast<uint32_t>(hash));
  }
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
    } else if (auto* pages = std::get_if<PagesDigest>(&e.memory)) {
      w.u8(static_cast<uint8_t>(MemoryKind::pages_digest));
      write_pages_digest(e.pos, *pages, GfnCoding::absolute);
    } else if (auto* searched = std::get_if<SearchedStop>(&e.memory)) {
      if (searched->one_hash && (searched->hash_bits != 32 || searched->registers_xxh3 != 0))
        throw Error("AsyncPosition at " + e.pos.to_string() +
                    ": a searched stop with one hash has it 32 bits wide and no registers hash");
      if (searched->pages_implied && (!searched->one_hash || !searched->pages.gfns.empty()))
        throw Error("AsyncPosition at " + e.pos.to_string() +
                    ": a searched stop with implied pages has one hash and lists no pages");
      w.u8(static_cast<uint8_t>(kind_of(*searched)));
      w.u64(searched->rip);
      if (!searched->one_hash) write_hash(e.pos, searched->registers_xxh3, searched->hash_bits);
      if (searched->pages_implied)
        write_hash(e.pos, searched->pages.xxh3, searched->hash_bits);
      else
        write_pages_digest(e.pos, searched->pages, gfn_coding_of(*searched), searched->hash_bits);
    } else if (auto* kernel_return = std::get_if<KernelReturn>(&e.memory)) {
      // Replay counts the entries before it: a reader refuses one without.
      if (!e.kernel_entries)
        throw Error("AsyncPosition at " + e.pos.to_string() +
                    ": a kernel-return stop needs its kernel-entry count");
      w.u8(static_cast<uint8_t>(kernel_return->hash_bits == 32 ? MemoryKind::kernel_return_32
                                                               : MemoryKind::kernel_return));
      w.u64(kernel_return->return_rip);
      write_hash(e.pos, kernel_return->registers_xxh3, kernel_return->hash_bits);
    } else {
      const auto& delta = std::get<MemoryDelta>(e.memory);
      w.u8(static_cast<uint8_t>(kind_of(delta.base)));
      w.u64(delta.reset_landmark);
      if (delta.base == DeltaBase::return_to_user) w.u64(delta.return_rip);
      w.u32(static_cast<uint32_t>(delta.pages.size()));
      for (const auto& page : delta.pages) {
        w.u64(page.gfn);
        w.bytes(page.compressed_xor);
      }
    }
    // An optional tail, absent before format 2.2.
    if (e.kernel_entries) {
      w.u8(static_cast<uint8_t>(e.kernel_entries->addresses.size()));
      for (const uint64_t address : e.kernel_entries->addresses) w.u64(address);
      w.u32(e.kernel_entries->count);
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

// Returns the `T` held by `v`, first switching `v` to a fresh T if it holds
// something else: a T already there keeps its buffers for reuse.
template <class T, class Variant>
T& reuse_alternative(Variant& v) {
  if (auto* held = std::get_if<T>(&v)) return *held;
  return v.template emplace<T>();
}

// decode_position with one bounds check instead of three: on the wire a
// Position is its three u64 in order, little-endian like the host (the same
// assumption ByteReader makes), so the bytes are the struct's. Two of these
// run per record on the log reader's path.
static_assert(sizeof(Position) == 3 * sizeof(uint64_t) && std::is_trivially_copyable_v<Position>);
void read_position(ByteReader& r, Position& p) { r.raw_into(&p, sizeof p); }

// Reads a pages digest's `count` gfns (the caller checked they fit), each
// above the one before: the listing is a set in one canonical order, so two
// logs of the same stop hash the same bytes. `store(i, gfn)` keeps each.
template <class Store>
void read_ascending_gfns(ByteReader& r, uint32_t count, GfnCoding coding, Store store) {
  uint64_t previous = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t offset = r.position();
    const uint64_t stored = coding == GfnCoding::varint_distance
                                ? read_varint(r, "searched stop gfn distance")
                                : r.u64();
    const uint64_t gfn = coding == GfnCoding::absolute ? stored : previous + stored;
    if (coding != GfnCoding::absolute && gfn < previous)
      throw FormatError("AsyncPosition: searched stop gfn distance " + std::to_string(stored) +
                            " overflows after gfn " + std::to_string(previous),
                        static_cast<int64_t>(offset));
    if (i > 0 && gfn <= previous)
      throw FormatError("AsyncPosition: pages digest lists gfn " + std::to_string(gfn) + " after " +
                            std::to_string(previous) + " (strictly ascending expected)",
                        static_cast<int64_t>(offset));
    store(i, gfn);
    previous = gfn;
  }
}

// Walks a record's fields storing every one, reusing the destination's
// buffers (assign keeps capacity).
struct FieldDecoder {
  ByteReader& r;
  void position(Position& p) { read_position(r, p); }
  template <class T>
  void pod(T& v) {
    v = r.pod<T>();
  }
  void bytes(std::vector<uint8_t>& v) {
    auto s = r.bytes();
    v.assign(s.begin(), s.end());
  }
  void string(std::string& v) {
    auto s = r.bytes();
    // clear + append keeps the capacity like assign, without assign's
    // checks for a source inside the string itself (half the cost).
    v.clear();
    v.append(reinterpret_cast<const char*>(s.data()), s.size());
  }
  template <class Walk>
  void pages(std::vector<PageDelta>& pages, uint32_t count, Walk walk) {
    pages.resize(count);
    for (auto& page : pages) walk(page);
  }
  void gfns(std::vector<uint64_t>& out, uint32_t count, GfnCoding coding) {
    out.resize(count);
    read_ascending_gfns(r, count, coding, [&out](uint32_t i, uint64_t gfn) { out[i] = gfn; });
  }
};

// Walks a record's fields with the same bounds checks, skipping strings and
// blobs instead of copying them (it checks a whole chunk before any record of
// it is decoded).
struct FieldChecker {
  ByteReader& r;
  void position(Position& p) { read_position(r, p); }
  template <class T>
  void pod(T& v) {
    v = r.pod<T>();
  }
  void bytes(std::vector<uint8_t>&) { r.bytes(); }
  void string(std::string&) { r.bytes(); }
  template <class Walk>
  void pages(std::vector<PageDelta>&, uint32_t count, Walk walk) {
    PageDelta scratch;  // stays empty: bytes() never stores into it
    for (uint32_t i = 0; i < count; ++i) walk(scratch);
  }
  void gfns(std::vector<uint64_t>&, uint32_t count, GfnCoding coding) {
    read_ascending_gfns(r, count, coding, [](uint32_t, uint64_t) {});
  }
};

// Each record's layout after its tag, in declaration order, written once for
// both field walkers. The encoder above writes the same sequence.
template <class Fields>
void fields(Fields& f, InterruptDelivery& e) {
  f.position(e.pos);
  f.pod(e.vector);
  f.pod(e.source_line);
}

// A hash of a searched or kernel-return stop: 8 bytes, or 4 (memory kinds 6-8).
template <class Fields>
void hash_field(Fields& f, uint64_t& hash, uint8_t hash_bits) {
  if (hash_bits == 64) return f.pod(hash);
  uint32_t low = 0;
  f.pod(low);
  hash = low;
}

// A pages digest's hash and listing, as memory kinds 3, 5 and 6 store them.
template <class Fields>
void pages_digest_fields(Fields& f, PagesDigest& pages, GfnCoding coding, const char* what,
                         uint8_t hash_bits = 64) {
  hash_field(f, pages.xxh3, hash_bits);
  const size_t count_at = f.r.position();
  uint64_t count = 0;
  size_t min_gfn_bytes = 1;
  if (coding == GfnCoding::varint_distance) {
    count = read_varint(f.r, "pages digest count");
  } else {
    count = f.r.template pod<uint32_t>();
    min_gfn_bytes = sizeof(uint64_t);
  }
  // Each gfn takes at least min_gfn_bytes: a count beyond the bytes left is
  // a lie and must not drive an allocation.
  if (count > f.r.remaining() / min_gfn_bytes)
    throw FormatError(std::string("AsyncPosition: ") + what + " claims " + std::to_string(count) +
                          " pages but only " + std::to_string(f.r.remaining()) + " bytes remain",
                      static_cast<int64_t>(count_at));
  f.gfns(pages.gfns, static_cast<uint32_t>(count), coding);
}

template <class Fields>
void fields(Fields& f, AsyncPosition& e) {
  f.position(e.pos);
  f.pod(e.vcpu_state_format);
  f.bytes(e.vcpu_state);
  uint8_t kind = 0;
  f.pod(kind);
  if (kind == static_cast<uint8_t>(MemoryKind::digest)) {
    f.pod(reuse_alternative<MemoryDigest>(e.memory).digest);
  } else if (kind == static_cast<uint8_t>(MemoryKind::delta) ||
             kind == static_cast<uint8_t>(MemoryKind::delta_from_previous_position) ||
             kind == static_cast<uint8_t>(MemoryKind::delta_from_return_to_user)) {
    auto& delta = reuse_alternative<MemoryDelta>(e.memory);
    delta.base = kind == static_cast<uint8_t>(MemoryKind::delta) ? DeltaBase::shadow
                 : kind == static_cast<uint8_t>(MemoryKind::delta_from_previous_position)
                     ? DeltaBase::previous_position
                     : DeltaBase::return_to_user;
    f.pod(delta.reset_landmark);
    delta.return_rip = 0;
    if (delta.base == DeltaBase::return_to_user) f.pod(delta.return_rip);
    uint32_t count = 0;
    f.pod(count);
    // Each page entry takes at least 12 bytes: a count beyond that is a lie
    // and must not drive an allocation.
    constexpr size_t kMinPageEntry = 12;
    if (count > f.r.remaining() / kMinPageEntry)
      throw FormatError("AsyncPosition: memory delta claims " + std::to_string(count) +
                            " pages but only " + std::to_string(f.r.remaining()) + " bytes remain",
                        static_cast<int64_t>(f.r.position()));
    f.pages(delta.pages, count, [&f](PageDelta& page) {
      f.pod(page.gfn);
      f.bytes(page.compressed_xor);
    });
  } else if (kind == static_cast<uint8_t>(MemoryKind::pages_digest)) {
    pages_digest_fields(f, reuse_alternative<PagesDigest>(e.memory), GfnCoding::absolute,
                        "pages digest");
  } else if (kind == static_cast<uint8_t>(MemoryKind::searched_stop) ||
             kind == static_cast<uint8_t>(MemoryKind::searched_stop_32) ||
             kind == static_cast<uint8_t>(MemoryKind::searched_stop_one_hash) ||
             kind == static_cast<uint8_t>(MemoryKind::searched_stop_implied_pages)) {
    auto& searched = reuse_alternative<SearchedStop>(e.memory);
    searched.hash_bits = kind == static_cast<uint8_t>(MemoryKind::searched_stop) ? 64 : 32;
    searched.pages_implied = kind == static_cast<uint8_t>(MemoryKind::searched_stop_implied_pages);
    searched.one_hash =
        searched.pages_implied || kind == static_cast<uint8_t>(MemoryKind::searched_stop_one_hash);
    f.pod(searched.rip);
    if (searched.one_hash)
      searched.registers_xxh3 = 0;
    else
      hash_field(f, searched.registers_xxh3, searched.hash_bits);
    if (searched.pages_implied) {
      hash_field(f, searched.pages.xxh3, searched.hash_bits);
      searched.pages.gfns.clear();
    } else {
      pages_digest_fields(f, searched.pages, gfn_coding_of(searched), "searched stop",
                          searched.hash_bits);
    }
  } else if (kind == static_cast<uint8_t>(MemoryKind::kernel_return) ||
             kind == static_cast<uint8_t>(MemoryKind::kernel_return_32)) {
    auto& kernel_return = reuse_alternative<KernelReturn>(e.memory);
    kernel_return.hash_bits = kind == static_cast<uint8_t>(MemoryKind::kernel_return) ? 64 : 32;
    f.pod(kernel_return.return_rip);
    hash_field(f, kernel_return.registers_xxh3, kernel_return.hash_bits);
  } else {
    throw FormatError("AsyncPosition: unknown memory kind " + std::to_string(kind),
                      static_cast<int64_t>(f.r.position() - 1));
  }
  if (f.r.remaining() == 0) {
    if (kind == static_cast<uint8_t>(MemoryKind::kernel_return) ||
        kind == static_cast<uint8_t>(MemoryKind::kernel_return_32))
      throw FormatError("AsyncPosition: a kernel-return stop without its kernel-entry count",
                        static_cast<int64_t>(f.r.position()));
    e.kernel_entries.reset();
    return;
  }
  auto& entries = e.kernel_entries ? *e.kernel_entries : e.kernel_entries.emplace();
  uint8_t address_count = 0;
  f.pod(address_count);
  if (address_count == 0 || address_count > CodeArrivals::kMaxAddresses)
    throw FormatError("AsyncPosition: kernel entries at " + std::to_string(address_count) +
                          " addresses (1 to " + std::to_string(CodeArrivals::kMaxAddresses) +
                          " expected)",
                      static_cast<int64_t>(f.r.position() - 1));
  entries.addresses.resize(address_count);
  for (uint64_t& address : entries.addresses) f.pod(address);
  f.pod(entries.count);
}

template <class Fields>
void fields(Fields& f, Input& e) {
  f.position(e.pos);
  f.string(e.channel);
  f.bytes(e.data);
}

template <class Fields>
void fields(Fields& f, StateDigest& e) {
  f.position(e.pos);
  f.pod(e.registers);
  f.pod(e.memory);
  uint8_t has_detail = 0;
  f.pod(has_detail);
  if (has_detail > 1)
    throw FormatError("StateDigest: detail flag must be 0 or 1, got " + std::to_string(has_detail));
  if (!has_detail) {
    e.detail.reset();
    return;
  }
  if (!e.detail) e.detail.emplace();
  f.string(*e.detail);
}

template <class Fields>
void fields(Fields& f, CheckpointRef& e) {
  f.position(e.pos);
  f.string(e.file_name);
  f.pod(e.digest);
}

template <class Fields>
void fields(Fields& f, EndOfRecording& e) {
  f.position(e.pos);
  f.string(e.reason);
  f.pod(e.exit_status);  // stored as its u32 bit pattern
}

// Reads the tag and calls `on_type(std::type_identity<T>{})` for the record
// type T it names (which walks T's fields), then insists every byte was used.
template <class OnType>
EventType dispatch_record(ByteReader& r, OnType&& on_type) {
  uint8_t tag = r.u8();
  switch (static_cast<EventType>(tag)) {
    case EventType::interrupt_delivery:
      on_type(std::type_identity<InterruptDelivery>{});
      break;
    case EventType::async_position:
      on_type(std::type_identity<AsyncPosition>{});
      break;
    case EventType::input:
      on_type(std::type_identity<Input>{});
      break;
    case EventType::state_digest:
      on_type(std::type_identity<StateDigest>{});
      break;
    case EventType::checkpoint_ref:
      on_type(std::type_identity<CheckpointRef>{});
      break;
    case EventType::end_of_recording:
      on_type(std::type_identity<EndOfRecording>{});
      break;
    default:
      throw FormatError("unknown event record tag " + std::to_string(tag) +
                            " (this log needs a newer librr, or it is corrupt)",
                        0);
  }
  r.expect_end();
  return static_cast<EventType>(tag);
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

Event decode_event(std::span<const uint8_t> data) {
  Event event;
  decode_event_into(data, event);
  return event;
}

void decode_event_into(std::span<const uint8_t> data, Event& out) {
  ByteReader r(data, "event record");
  FieldDecoder decoder{r};
  dispatch_record(r, [&](auto type) {
    fields(decoder, reuse_alternative<typename decltype(type)::type>(out));
  });
}

EventType check_event(std::span<const uint8_t> data, Position& pos) {
  ByteReader r(data, "event record");
  FieldChecker checker{r};
  return dispatch_record(r, [&](auto type_tag) {
    // Only fixed-size fields land in `scratch`: an empty record owns no
    // buffers, so checking allocates nothing.
    typename decltype(type_tag)::type scratch;
    fields(checker, scratch);
    pos = scratch.pos;
  });
}

}  // namespace librr
