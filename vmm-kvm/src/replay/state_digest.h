#pragma once
// The state digest record and replay compare (docs/record-replay.md,
// "Divergence"): BLAKE2b of the registers that define where the guest is,
// and a 128-bit XXH3 of guest memory as the replay rules define it
// (replay_rules.h), zero-padded into the 32-byte field.
#include <xxhash.h>

#include <string>

#include "guest_memory.h"
#include "librr/events.h"
#include "machine/machine.h"
#include "replay/replay_rules.h"

namespace vmm {

librr::StateDigest compute_state_digest(Machine& machine, const librr::Position& pos,
                                        MemoryDigestKind memory_digest);
// "registers", "memory" or "" when equal.
std::string describe_digest_difference(const librr::StateDigest& expected,
                                       const librr::StateDigest& actual);

// Replay rules 1: XXH3-128 of every byte of guest memory, without faulting in
// pages the host never populated (hashed as the zeros they read as).
XXH128_hash_t hash_guest_memory(GuestMemory memory);
// Replay rules 2: XXH3-128 of each page that is not all zeros, in ascending
// order, preceded by its page frame number (u64, little-endian). Pages the
// host never populated are zeros and are not read.
XXH128_hash_t hash_nonzero_pages(GuestMemory memory);

}  // namespace vmm
