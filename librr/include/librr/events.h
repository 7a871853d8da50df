#pragma once
// The typed records of a recording's event log. Every record carries the
// Position at which it happened. vCPU state is an opaque, VMM-defined blob
// tagged with a format number: librr never interprets it.
//
// Encoding (little-endian, via ByteWriter): a u8 type tag followed by the
// record's fields in declaration order. Strings and byte blobs are u32
// length + bytes. Decoding rejects unknown tags and trailing bytes with
// FormatError. Versioning: a new record type or field requires a new log
// format version (see schemas/log-format.md); within one format version an
// unknown tag is corruption, never something to skip.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "librr/bytes.h"
#include "librr/position.h"

namespace librr {

using Digest256 = std::array<uint8_t, 32>;

// An interrupt injected into the guest.
struct InterruptDelivery {
  Position pos;
  uint8_t vector = 0;
  uint32_t source_line = 0;  // interrupt controller input (IRQ/GSI) that raised it
  friend bool operator==(const InterruptDelivery&, const InterruptDelivery&) = default;
};

// BLAKE2b-256 of the guest pages that matter at this point (VMM's choice).
struct MemoryDigest {
  Digest256 digest{};
  friend bool operator==(const MemoryDigest&, const MemoryDigest&) = default;
};

// One guest page as its XOR against the shadow copy taken at the reset point
// (unchanged bytes are zeros): a sparse list of the changed byte runs when
// that is small, else a zstd frame (schemas/log-format.md, "Page deltas").
struct PageDelta {
  uint64_t gfn = 0;  // guest page frame number
  std::vector<uint8_t> compressed_xor;
  friend bool operator==(const PageDelta&, const PageDelta&) = default;
};

// What a MemoryDelta's pages are XORed against (schemas/log-format.md, "Page deltas").
enum class DeltaBase : uint8_t {
  // The shadow copy both sides keep: memory as of each page's last listing in
  // a delta (or the initial snapshot). Pages written since the reset point are
  // all listed, even those equal to their shadow (UnchangedPages::kKeep).
  shadow = 1,
  // Guest memory as it is at the position just before this one on the
  // timeline: landmark `reset_landmark` (== the async position's landmark)
  // when the position is that landmark's first asynchronous stop, else the
  // previous asynchronous stop after it. Replay holds exactly that memory
  // when it installs the position, so only pages written in the skipped
  // stretch are listed (since format 2.1).
  previous_position = 2,
  // Guest memory right after the guest kernel's first return to user mode
  // through the instruction at MemoryDelta::return_rip (an iretq) after the
  // stop's kernel-entry count of arrivals (none: 0), counted from the
  // position just before this one (as for previous_position, whose landmark
  // `reset_landmark` names): where a KernelReturn with that count lies.
  // Replay re-executes to there, so only pages that differ from it at the
  // stop are listed: those user code wrote since (format 2.13; a stop in
  // user mode, docs/record-replay.md, "Deltas based on the return to user
  // mode").
  return_to_user = 3,
};

struct MemoryDelta {
  uint64_t reset_landmark = 0;  // landmark of the shadow copy the pages are XORed against
  std::vector<PageDelta> pages;
  DeltaBase base = DeltaBase::shadow;
  uint64_t return_rip = 0;  // DeltaBase::return_to_user only: the kernel's return instruction
  friend bool operator==(const MemoryDelta&, const MemoryDelta&) = default;
};

// The memory part of an asynchronous stop that replay finds again instead of
// installing (since format 2.3): it re-executes the stretch before the stop
// with a hardware breakpoint at the stop's RIP and takes the hit where the
// registers equal the logged vCPU state's and these pages hash to `xxh3`
// (docs/record-replay.md, "Searched positions"). The pages are those the
// recorder saw written since it last looked, a superset of the stretch's
// writes, so a loop that progresses only in memory is told apart.
struct PagesDigest {
  uint64_t xxh3 = 0;           // XXH3-64 (seed 0) of the listed pages' bytes, concatenated in order
  std::vector<uint64_t> gfns;  // guest page frame numbers, ascending
  friend bool operator==(const PagesDigest&, const PagesDigest&) = default;
};

// The memory part of an asynchronous stop that replay reaches by re-executing
// the stretch before it, with nothing of the state logged (since format 2.8):
// the stop is where the guest kernel, after the stretch's
// `kernel_entries->count`-th counted entry (which the position must carry),
// next returns to user mode through the instruction at `return_rip`
// (an iretq), right after that instruction. The recorder stops there on
// purpose, to deliver an interrupt at a point it can name without a branch
// counter (docs/record-replay.md, "Kernel-return stops"). `registers_xxh3`
// is an XXH3-64 of the general registers there (the VMM's layout): replay
// and analyzers check that they arrived. With `hash_bits` 32 (memory kind 8,
// since format 2.11) it is the low 32 bits: the hash chooses nothing (the
// entry count does), it only checks, and misses a divergence with odds of
// 2^-32 (4 bytes less per stop).
struct KernelReturn {
  uint64_t return_rip = 0;
  uint64_t registers_xxh3 = 0;
  uint8_t hash_bits = 64;  // 64 (kind 4) or 32 (kind 8)
  uint64_t hash_mask() const { return hash_bits == 32 ? 0xffffffffull : ~0ull; }
  friend bool operator==(const KernelReturn&, const KernelReturn&) = default;
};

// The memory part of a searched stop logged without its vCPU state (since
// format 2.9; `vcpu_state` is empty): replay re-executes the stretch before
// the stop with a hardware breakpoint at `rip` and takes the hit where an
// XXH3-64 of the general registers (the VMM's layout) equals
// `registers_xxh3` and `pages` hash to theirs, as for a PagesDigest stop;
// the registers it then holds are the stop's, so they need not be logged
// (docs/record-replay.md, "Searched positions"). The stop is in kernel mode.
// With `hash_bits` 32 (memory kind 6, since format 2.10) both hashes are the
// low 32 bits of the XXH3-64s, 8 bytes less per stop: together they still
// tell a wrong hit apart with odds of 2^-64, and a loop whose registers do
// not change with 2^-32 per hit. With `one_hash` (memory kind 7, since
// format 2.11, 32 bits) there is one hash: `pages.xxh3` is the low 32 bits
// of an XXH3-64 of the general registers followed by the listed pages, and
// `registers_xxh3` is 0. A wrong hit passes with odds of 2^-32 whatever
// differs, the same as kind 6 in a loop whose registers do not change, for
// 4 bytes less per stop. With `pages_implied` too (memory kind 9, since
// format 2.12) the page listing is not logged either: the pages are those
// written since the previous position, ascending, which replay finds with
// the same dirty-page tracking the recorder used (`pages.gfns` is empty in
// memory); ~5 bytes less per stop after compression.
struct SearchedStop {
  uint64_t rip = 0;
  uint64_t registers_xxh3 = 0;
  PagesDigest pages;
  uint8_t hash_bits = 64;      // 64 (kind 5) or 32 (kinds 6, 7 and 9)
  bool one_hash = false;       // kinds 7 and 9
  bool pages_implied = false;  // kind 9
  // The mask a computed XXH3-64 is compared through.
  uint64_t hash_mask() const { return hash_bits == 32 ? 0xffffffffull : ~0ull; }
  friend bool operator==(const SearchedStop&, const SearchedStop&) = default;
};

// How often the vCPU arrived at one of a few code addresses (the guest
// kernel's entry points, counted with debug registers by the recorder) in
// the stretch from the previous position to an asynchronous stop. Replay
// does not need it (it installs the stop); an analyzer that re-executes the
// stretch does: where the stop lies in native user code it cannot be
// stopped at, the count says how many kernel entries come before it
// (schemas/log-format.md, since 2.2).
struct CodeArrivals {
  static constexpr size_t kMaxAddresses = 4;  // x86 debug registers
  std::vector<uint64_t> addresses;
  uint32_t count = 0;
  friend bool operator==(const CodeArrivals&, const CodeArrivals&) = default;
};

// An asynchronous stop of the vCPU (see Position): enough state to check, or
// reconstruct, where replay must be when it reaches this position.
struct AsyncPosition {
  Position pos;
  uint32_t vcpu_state_format = 0;
  std::vector<uint8_t> vcpu_state;
  std::variant<MemoryDigest, MemoryDelta, PagesDigest, KernelReturn, SearchedStop> memory;
  std::optional<CodeArrivals> kernel_entries = std::nullopt;  // since format 2.2
  friend bool operator==(const AsyncPosition&, const AsyncPosition&) = default;
};

// Whether the stop carries its vCPU state: all kinds but a kernel return
// (2.8) and a searched stop (2.9), which replay reaches by re-execution.
inline bool logs_vcpu_state(const AsyncPosition& stop) {
  return !std::holds_alternative<KernelReturn>(stop.memory) &&
         !std::holds_alternative<SearchedStop>(stop.memory);
}

// Bytes that entered the guest from outside ("serial0", "net0", "clock", ...).
struct Input {
  Position pos;
  std::string channel;
  std::vector<uint8_t> data;
  friend bool operator==(const Input&, const Input&) = default;
};

// A digest of the machine state, compared during replay to detect divergence.
struct StateDigest {
  Position pos;
  Digest256 registers{};
  Digest256 memory{};
  std::optional<std::string> detail;
  friend bool operator==(const StateDigest&, const StateDigest&) = default;
};

// A checkpoint file written beside the log at this position.
struct CheckpointRef {
  Position pos;
  std::string file_name;
  Digest256 digest{};  // BLAKE2b-256 of the checkpoint file
  friend bool operator==(const CheckpointRef&, const CheckpointRef&) = default;
};

// The last record of a cleanly finished recording.
struct EndOfRecording {
  Position pos;
  std::string reason;
  int32_t exit_status = 0;
  friend bool operator==(const EndOfRecording&, const EndOfRecording&) = default;
};

using Event = std::variant<InterruptDelivery, AsyncPosition, Input, StateDigest, CheckpointRef,
                           EndOfRecording>;

// Wire tags. Values are part of the file format: never renumber. Every
// record's first field must be its Position: format 2 chunk payloads
// delta-code it without knowing the record type (schemas/log-format.md 3.3).
enum class EventType : uint8_t {
  interrupt_delivery = 1,
  async_position = 2,
  input = 3,
  state_digest = 4,
  checkpoint_ref = 5,
  end_of_recording = 6,
};
inline constexpr size_t kEventTypeCount = 6;

EventType event_type(const Event& event);
std::string_view event_type_name(EventType type);
const Position& event_position(const Event& event);

// Appends tag + body.
void encode_event(const Event& event, ByteWriter& out);
std::vector<uint8_t> encode_event(const Event& event);
// Decodes exactly one record filling `data`; throws FormatError otherwise.
Event decode_event(std::span<const uint8_t> data);
// Like decode_event, into `out`, reusing the buffers `out` already owns when it
// holds the same record type: once they have grown, decoding allocates nothing
// (the log reader's per-record path). On FormatError `out` is valid but unspecified.
void decode_event_into(std::span<const uint8_t> data, Event& out);

// Checks every byte of a record exactly as decode_event does, without copying
// its strings and blobs anywhere; returns its type and stores its position in
// `pos`. Throws FormatError where decode_event would.
EventType check_event(std::span<const uint8_t> data, Position& pos);

// Memory deltas (make_page_delta, apply_page_delta, ...): librr/page_delta.h.

}  // namespace librr
