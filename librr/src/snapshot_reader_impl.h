#pragma once
// SnapshotReader's state, shared by the reader and the verifier. Internal.
#include <functional>

#include "librr/snapshot.h"
#include "posix_file.h"
#include "snapshot_format.h"

namespace librr {

struct SnapshotReader::Impl {
  using PayloadCallback = std::function<void(std::span<const uint8_t> plain, uint64_t offset)>;

  Impl(PosixFile f, std::filesystem::path p) : file(std::move(f)), path(std::move(p)) {}

  // Reads the header, trailer and table; checks the key.
  void open(const std::optional<Key>& key);
  const snapshot_format::TableEntry& entry(std::string_view name, SectionKind kind) const;
  // Reads a section's frames in order, checking each checksum and decrypting,
  // and hands each plaintext payload to `on_payload`.
  void for_each_payload(const snapshot_format::TableEntry& e, snapshot_format::FrameType type,
                        const PayloadCallback& on_payload) const;
  std::vector<uint8_t> decode_blob(const snapshot_format::TableEntry& e) const;
  void decode_memory(const snapshot_format::TableEntry& e, const RunCallback& on_run) const;
  // One-message stream; throws DecryptionError with `what` and `offset`.
  std::vector<uint8_t> decrypt(std::span<const uint8_t> stream_header,
                               std::span<const uint8_t> ciphertext, uint64_t offset,
                               bool expect_final, const std::string& what) const;

  PosixFile file;
  std::filesystem::path path;
  std::optional<Key> key;
  uint64_t file_size = 0;
  snapshot_format::FileHeader header;
  snapshot_format::Trailer trailer;
  std::vector<snapshot_format::TableEntry> entries;
  std::vector<SectionInfo> infos;
};

}  // namespace librr
