#pragma once
// Where a log's bytes go: per record kind (and per part of an asynchronous
// position, per input channel), the bytes in format 2's compact framing and
// an estimate of what they cost after compression. Used to decide what to
// shrink (docs/benchmarks.md) and printed by `rr-analyze info --bytes`.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "librr/crypto.h"

namespace librr {

struct LogByteShare {
  std::string kind;        // "InterruptDelivery", "AsyncPosition.vcpu_state", "Input:clock", ...
  uint64_t records = 0;    // records of the kind (for a part: records it is part of)
  uint64_t raw_bytes = 0;  // in format 2's compact framing (framing of a part: its record)
  // The kind's bytes of each chunk compressed on their own (zstd, the
  // writer's level). Kinds compress better together, so the sum of these is
  // above the log's stored payload; the share of each is what matters.
  uint64_t compressed_alone = 0;
};

// The pages of memory deltas coded in one form (librr/page_delta.h, PageForm).
struct PageFormShare {
  std::string form;  // "sparse XOR", "copied range", ...
  uint64_t pages = 0;
  uint64_t bytes = 0;  // their coded bytes, before the chunk's compression
};

struct LogByteReport {
  uint64_t file_bytes = 0;
  uint64_t chunks = 0;
  uint64_t framing_bytes = 0;             // file header + chunk headers
  uint64_t stored_payload_bytes = 0;      // file_bytes - framing_bytes
  uint64_t raw_bytes = 0;                 // sum of the shares' raw bytes
  std::vector<LogByteShare> shares;       // in a fixed order, kinds with no record left out
  std::vector<PageFormShare> page_forms;  // in PageForm order, forms with no page left out
  std::string to_string() const;          // a table
};

// Reads the whole log (verifying it as LogReader does); throws what
// LogReader throws. Records after a problem are not counted.
LogByteReport measure_log_bytes(const std::filesystem::path& log,
                                std::optional<Key> key = std::nullopt);

}  // namespace librr
