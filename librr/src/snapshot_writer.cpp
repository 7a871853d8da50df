// SnapshotWriter: streams sections to disk frame by frame, hashing every byte
// as it goes so the digest is ready the moment the trailer is written.
#include <unistd.h>

#include <cstring>
#include <set>

#include "librr/bytes.h"
#include "librr/compress.h"
#include "librr/deferred_sync.h"
#include "librr/host_memory.h"
#include "librr/snapshot.h"
#include "posix_file.h"
#include "snapshot_format.h"

namespace librr {

using namespace snapshot_format;

struct SnapshotWriter::Impl {
  Impl(const std::filesystem::path& p, Options o)
      : path(p),
        options(std::move(o)),
        file(PosixFile::create_exclusive(p, options.key ? 0600 : 0644)),
        compressor(options.compression_level) {}

  std::filesystem::path path;
  Options options;
  PosixFile file;
  Hasher hasher;
  ZstdCompressor compressor;
  uint64_t offset = 0;
  bool finished = false;
  // Set when writing a section failed half way: the file no longer matches
  // the table, so the writer refuses to go on rather than write a bad snapshot.
  bool failed = false;
  std::vector<TableEntry> table;
  std::set<std::string, std::less<>> names;

  // State of the section being written.
  TableEntry current;
  std::vector<uint64_t> frame_checksums;
  std::optional<StreamEncryptor> encryptor;

  class MemoryBlockBuilder;
  Digest write_table_and_trailer();

  bool encrypted() const { return options.key.has_value(); }

  template <class F>
  void guarded(F&& write_section) {
    if (failed)
      throw Error("snapshot " + path.string() + ": an earlier write failed; the file is unusable");
    try {
      write_section();
    } catch (...) {
      failed = true;
      throw;
    }
  }

  void write(std::span<const uint8_t> bytes) {
    file.write_all(bytes.data(), bytes.size());
    hasher.update(bytes);
    offset += bytes.size();
  }

  void begin_section(std::string_view name, SectionKind kind, uint32_t version) {
    if (finished) throw Error("snapshot " + path.string() + ": section added after finish()");
    if (name.empty() || name.size() > kSnapshotMaxNameLength)
      throw Error("snapshot section name must be 1.." + std::to_string(kSnapshotMaxNameLength) +
                  " bytes, got " + std::to_string(name.size()));
    if (names.contains(name))
      throw Error("snapshot " + path.string() + ": duplicate section '" + std::string(name) + "'");
    if (table.size() >= kSnapshotMaxSections)
      throw Error("snapshot " + path.string() + ": more than " +
                  std::to_string(kSnapshotMaxSections) + " sections");
    current = TableEntry{};
    current.info.name = std::string(name);
    current.info.kind = kind;
    current.info.version = version;
    current.info.file_offset = offset;
    frame_checksums.clear();
    encryptor.reset();
    if (encrypted()) {
      encryptor.emplace(*options.key);
      current.stream_header = encryptor->header();
    }
  }

  // `plain` starts with kFrameHeaderSize bytes of room for the frame header,
  // so unencrypted frames are checksummed and written without a copy.
  void emit_frame(FrameType type, std::vector<uint8_t>& plain, bool last_of_section) {
    std::vector<uint8_t> sealed;
    std::vector<uint8_t>* frame = &plain;
    if (encryptor) {
      auto ciphertext =
          encryptor->seal(std::span(plain).subspan(kFrameHeaderSize), last_of_section);
      sealed.resize(kFrameHeaderSize + ciphertext.size());
      std::memcpy(sealed.data() + kFrameHeaderSize, ciphertext.data(), ciphertext.size());
      frame = &sealed;
    }
    uint32_t length = static_cast<uint32_t>(frame->size() - kFrameHeaderSize);
    auto type_value = static_cast<uint32_t>(type);
    std::memcpy(frame->data() + 8, &length, 4);
    std::memcpy(frame->data() + 12, &type_value, 4);
    uint64_t checksum = checksum64(std::span(*frame).subspan(8));
    std::memcpy(frame->data(), &checksum, 8);
    write(*frame);
    frame_checksums.push_back(checksum);
  }

  void end_section() {
    current.frame_count = static_cast<uint32_t>(frame_checksums.size());
    current.section_checksum = section_checksum(frame_checksums);
    current.info.stored_size = offset - current.info.file_offset;
    names.insert(current.info.name);
    table.push_back(std::move(current));
    encryptor.reset();
  }
};

// Collects non-zero pages of a memory region into blocks of at most
// kSnapshotMaxBlockRaw bytes. Blocks are emitted one behind, because with
// encryption the last frame of a section must carry the final tag.
class SnapshotWriter::Impl::MemoryBlockBuilder {
 public:
  explicit MemoryBlockBuilder(SnapshotWriter::Impl& writer) : writer_(writer) {
    staging_.reserve(kSnapshotMaxBlockRaw);
  }

  void add_page(uint64_t index, const uint8_t* bytes, uint64_t size) {
    if (staging_.size() + size > kSnapshotMaxBlockRaw) seal_block();
    if (!extents_.empty() && extents_.back().first_page + extents_.back().page_count == index)
      ++extents_.back().page_count;
    else
      extents_.push_back({index, 1});
    staging_.insert(staging_.end(), bytes, bytes + size);
  }

  void finish() {
    seal_block();
    if (!pending_.empty()) writer_.emit_frame(FrameType::kMemoryBlock, pending_, true);
  }

 private:
  void seal_block() {
    if (extents_.empty()) return;
    if (!pending_.empty()) writer_.emit_frame(FrameType::kMemoryBlock, pending_, false);
    pending_.assign(kFrameHeaderSize, 0);
    ByteWriter block_header;
    block_header.u32(static_cast<uint32_t>(extents_.size()));
    for (const auto& e : extents_) {
      block_header.u64(e.first_page);
      block_header.u32(e.page_count);
    }
    block_header.u32(static_cast<uint32_t>(staging_.size()));
    pending_.insert(pending_.end(), block_header.data().begin(), block_header.data().end());
    writer_.compressor.compress_append(staging_, pending_);
    extents_.clear();
    staging_.clear();
  }

  SnapshotWriter::Impl& writer_;
  std::vector<Extent> extents_;
  std::vector<uint8_t> staging_;
  std::vector<uint8_t> pending_;  // a complete block not yet written
};

SnapshotWriter::SnapshotWriter(const std::filesystem::path& path, Options options)
    : impl_(std::make_unique<Impl>(path, std::move(options))) {
  FileHeader header;
  if (impl_->encrypted()) {
    header.flags |= kFlagEncrypted;
    header.key_fingerprint = impl_->options.key->fingerprint();
  }
  impl_->write(header.encode());
}

SnapshotWriter::~SnapshotWriter() {
  if (impl_ && !impl_->finished) {
    // An unfinished snapshot is useless and must not be mistaken for one.
    impl_->file.close();
    ::unlink(impl_->path.c_str());
  }
}

void SnapshotWriter::add_blob(std::string_view name, uint32_t version,
                              std::span<const uint8_t> bytes) {
  if (bytes.size() > kSnapshotMaxBlobSize)
    throw Error("snapshot blob '" + std::string(name) + "' is " + std::to_string(bytes.size()) +
                " bytes, more than the limit of " + std::to_string(kSnapshotMaxBlobSize));
  Impl& w = *impl_;
  w.begin_section(name, SectionKind::kBlob, version);
  w.current.info.size = bytes.size();
  w.guarded([&] {
    size_t done = 0;
    do {
      size_t n = std::min<size_t>(bytes.size() - done, kSnapshotMaxBlockRaw);
      std::vector<uint8_t> payload(kFrameHeaderSize, 0);
      ByteWriter chunk_header;
      chunk_header.u32(static_cast<uint32_t>(n));
      payload.insert(payload.end(), chunk_header.data().begin(), chunk_header.data().end());
      w.compressor.compress_append(bytes.subspan(done, n), payload);
      done += n;
      w.emit_frame(FrameType::kBlobChunk, payload, done == bytes.size());
    } while (done < bytes.size());
    w.end_section();
  });
}

void SnapshotWriter::add_memory(std::string_view name, uint64_t guest_phys_base,
                                const uint8_t* host, uint64_t size) {
  if (size > kMaxRegionSize || guest_phys_base > UINT64_MAX - size)
    throw Error("snapshot memory region '" + std::string(name) + "' of " + std::to_string(size) +
                " bytes at " + std::to_string(guest_phys_base) + " is out of range");
  if (size > 0 && host == nullptr)
    throw Error("snapshot memory region '" + std::string(name) + "': null host pointer");
  Impl& w = *impl_;
  w.begin_section(name, SectionKind::kMemory, 1);
  w.current.info.guest_phys_base = guest_phys_base;
  w.current.info.size = size;
  w.guarded([&] {
    Impl::MemoryBlockBuilder blocks(w);
    const uint64_t pages = page_count(size);
    // Pages the process never touched are zeros: skip them without reading
    // (a read would fault each one in).
    static_assert(kSnapshotPageSize == kHostPageSize);
    const auto held = held_pages(host, size);
    for (uint64_t i = 0; i < pages; ++i) {
      if (held && !(*held)[i]) continue;
      const uint8_t* page = host + i * kSnapshotPageSize;
      uint64_t n = page_bytes(size, i);
      if (is_zero(page, n)) continue;
      blocks.add_page(i, page, n);
      ++w.current.info.nonzero_pages;
    }
    blocks.finish();
    w.end_section();
  });
}

Digest SnapshotWriter::finish() {
  Impl& w = *impl_;
  if (w.finished) throw Error("snapshot " + w.path.string() + ": finish() called twice");
  Digest digest{};
  w.guarded([&] { digest = w.write_table_and_trailer(); });
  return digest;
}

Digest SnapshotWriter::Impl::write_table_and_trailer() {
  Impl& w = *this;
  Trailer trailer;
  trailer.table_offset = w.offset;
  std::vector<uint8_t> frame(kFrameHeaderSize, 0);
  auto table_bytes = encode_table(w.table, w.encrypted());
  if (w.encrypted()) {
    StreamEncryptor table_encryptor(*w.options.key);
    auto ciphertext = table_encryptor.seal(table_bytes, true);
    frame.insert(frame.end(), table_encryptor.header().begin(), table_encryptor.header().end());
    frame.insert(frame.end(), ciphertext.begin(), ciphertext.end());
  } else {
    frame.insert(frame.end(), table_bytes.begin(), table_bytes.end());
  }
  // The table is written as an ordinary frame, outside any section.
  w.encryptor.reset();
  w.emit_frame(FrameType::kSectionTable, frame, true);
  trailer.table_length = w.offset - trailer.table_offset;
  trailer.file_length = w.offset + kTrailerSize;
  auto bytes = trailer.encode();
  w.hasher.update(std::span(bytes).first(kTrailerDigestOffset));
  trailer.digest = w.hasher.finish();
  bytes = trailer.encode();
  w.file.write_all(bytes.data(), bytes.size());
  if (!w.options.deferred_sync) w.file.sync();
  w.file.close();
  if (w.options.deferred_sync) w.options.deferred_sync->add(w.path);
  w.finished = true;
  return trailer.digest;
}

}  // namespace librr
