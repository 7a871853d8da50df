#pragma once
// How rr-vmm interprets a recording at replay apart from its device models
// (those are pinned by kDeviceModelVersion): what a state digest hashes. The
// version goes into the manifest (tools.replay_rules_version) so that a
// recording made under older rules keeps replaying under them.
//
//   1 (manifests without the field): a state digest's memory part is XXH3-128
//     of every byte of guest RAM.
//   2: it is XXH3-128 of (gfn, page) for every page that is not all zeros,
//     in ascending order: the same guarantee (equal digests mean equal
//     memory), without reading the zeros of a mostly empty guest (a 512 MiB
//     Linux guest: ~25 ms per digest before, docs/record-replay.md).
//   3: as 2, and at an asynchronous stop with no clock sample logged the
//     clock moves to the earliest device deadline: record stops the vCPU
//     because a timer is due, so the sample it used to log there was that
//     deadline plus the lateness bound and host noise (docs/record-replay.md,
//     "Time").
#include <cstdint>
#include <optional>
#include <string>

#include "librr/manifest.h"

namespace vmm {

enum class MemoryDigestKind { every_byte, nonzero_pages };

struct ReplayRules {
  uint32_t version = 3;
  MemoryDigestKind memory_digest = MemoryDigestKind::nonzero_pages;
  bool stop_clock_from_deadline = true;

  // What `rr-vmm record` writes.
  static ReplayRules current() { return {}; }
  static ReplayRules version_1() { return {1, MemoryDigestKind::every_byte, false}; }
  static ReplayRules version_2() { return {2, MemoryDigestKind::nonzero_pages, false}; }
  // The rules a manifest names; nullopt for a version this rr-vmm does not
  // know (a newer one, or garbage).
  static std::optional<ReplayRules> from_manifest(const librr::ToolVersions& tools);
  std::string manifest_value() const { return std::to_string(version); }
};

}  // namespace vmm
