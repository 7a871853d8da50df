// SnapshotReader: random access to sections. The header, trailer and section
// table are checked at open(); each section's frames are checked (checksum,
// authentication, decompression, layout) as they are read.
#include <algorithm>
#include <cstring>

#include "librr/bytes.h"
#include "librr/compress.h"
#include "librr/host_memory.h"
#include "librr/snapshot.h"
#include "posix_file.h"
#include "snapshot_reader_impl.h"

namespace librr {

using namespace snapshot_format;

namespace {

std::string describe(const std::filesystem::path& path, const TableEntry& e) {
  return path.string() + " section '" + e.info.name + "'";
}

}  // namespace

void SnapshotReader::Impl::open(const std::optional<Key>& key_in) {
  key = key_in;
  file_size = file.size();
  const std::string name = path.string();
  std::vector<uint8_t> header_bytes(std::min<uint64_t>(file_size, kHeaderSize));
  file.read_exact_at(header_bytes.data(), header_bytes.size(), 0);
  header = FileHeader::decode(header_bytes, name);
  if (file_size < kHeaderSize + kFrameHeaderSize + kTrailerSize)
    throw FormatError(name + ": truncated snapshot (" + std::to_string(file_size) + " bytes)",
                      static_cast<int64_t>(file_size));
  std::array<uint8_t, kTrailerSize> trailer_bytes{};
  file.read_exact_at(trailer_bytes.data(), kTrailerSize, file_size - kTrailerSize);
  trailer = Trailer::decode(trailer_bytes, file_size, name);

  if (header.encrypted()) {
    if (!key)
      throw KeyError(name + " is encrypted (key fingerprint " + header.key_fingerprint +
                     "): a key file is needed to read it");
    if (key->fingerprint() != header.key_fingerprint)
      throw KeyError(name + " was encrypted with key fingerprint " + header.key_fingerprint +
                     " but the key given has fingerprint " + key->fingerprint() +
                     " (wrong key file?)");
  }

  Frame table = read_frame(file, trailer.table_offset, file_size - kTrailerSize);
  if (table.type != FrameType::kSectionTable || table.end() != file_size - kTrailerSize)
    throw FormatError(name + ": the trailer does not point at the section table",
                      static_cast<int64_t>(trailer.table_offset));
  std::vector<uint8_t> decrypted;
  std::span<const uint8_t> plain = table.payload();
  if (header.encrypted()) {
    if (plain.size() < StreamEncryptor::kHeaderSize)
      throw FormatError(name + ": encrypted section table too short",
                        static_cast<int64_t>(table.offset));
    decrypted =
        decrypt(plain.first(StreamEncryptor::kHeaderSize),
                plain.subspan(StreamEncryptor::kHeaderSize), table.offset, true, "section table");
    plain = decrypted;
  }
  entries = decode_table(plain, header.encrypted(), trailer.table_offset,
                         static_cast<int64_t>(table.offset));
  for (const auto& e : entries) infos.push_back(e.info);
}

std::vector<uint8_t> SnapshotReader::Impl::decrypt(std::span<const uint8_t> stream_header,
                                                   std::span<const uint8_t> ciphertext,
                                                   uint64_t offset, bool expect_final,
                                                   const std::string& what) const {
  try {
    StreamDecryptor decryptor(*key, stream_header);
    bool final = false;
    auto plain = decryptor.open(ciphertext, &final);
    if (final != expect_final) throw FormatError("stream end marker misplaced");
    return plain;
  } catch (const FormatError& e) {
    throw DecryptionError(
        path.string() + " " + what + " at offset " + std::to_string(offset) + ": " + e.what(),
        static_cast<int64_t>(offset));
  }
}

const TableEntry& SnapshotReader::Impl::entry(std::string_view name, SectionKind kind) const {
  for (const auto& e : entries) {
    if (e.info.name != name) continue;
    if (e.info.kind != kind)
      throw Error(path.string() + ": section '" + std::string(name) + "' is not a " +
                  (kind == SectionKind::kBlob ? "blob" : "memory region"));
    return e;
  }
  throw Error(path.string() + ": no section named '" + std::string(name) + "'");
}

void SnapshotReader::Impl::for_each_payload(const TableEntry& e, FrameType type,
                                            const PayloadCallback& on_payload) const {
  uint64_t offset = e.info.file_offset;
  const uint64_t end = offset + e.info.stored_size;
  std::optional<StreamDecryptor> decryptor;
  if (header.encrypted() && e.frame_count > 0) {
    try {
      decryptor.emplace(*key, e.stream_header);
    } catch (const FormatError& err) {
      throw DecryptionError(describe(path, e) + ": " + err.what(),
                            static_cast<int64_t>(e.info.file_offset));
    }
  }
  std::vector<uint64_t> checksums;
  for (uint32_t i = 0; i < e.frame_count; ++i) {
    Frame frame = read_frame(file, offset, end);
    if (frame.type != type)
      throw FormatError(describe(path, e) + ": unexpected frame type " +
                            std::to_string(static_cast<uint32_t>(frame.type)) + " at offset " +
                            std::to_string(offset),
                        static_cast<int64_t>(offset + 12));
    const bool last = i + 1 == e.frame_count;
    if (decryptor) {
      std::vector<uint8_t> plain;
      bool final = false;
      try {
        plain = decryptor->open(frame.payload(), &final);
      } catch (const FormatError& err) {
        throw DecryptionError(
            describe(path, e) + " frame at offset " + std::to_string(offset) + ": " + err.what(),
            static_cast<int64_t>(offset));
      }
      if (final != last)
        throw DecryptionError(describe(path, e) + ": encrypted stream ends at the wrong frame " +
                                  "(truncated or reordered) at offset " + std::to_string(offset),
                              static_cast<int64_t>(offset));
      on_payload(plain, offset);
    } else {
      on_payload(frame.payload(), offset);
    }
    checksums.push_back(frame.checksum);
    offset = frame.end();
  }
  if (offset != end)
    throw FormatError(describe(path, e) + ": " + std::to_string(end - offset) +
                          " unexpected bytes after its last frame",
                      static_cast<int64_t>(offset));
  if (section_checksum(checksums) != e.section_checksum)
    throw ChecksumError(describe(path, e) + ": section checksum mismatch",
                        static_cast<int64_t>(e.info.file_offset));
}

std::vector<uint8_t> SnapshotReader::Impl::decode_blob(const TableEntry& e) const {
  std::vector<uint8_t> out;
  for_each_payload(e, FrameType::kBlobChunk, [&](std::span<const uint8_t> plain, uint64_t at) {
    try {
      ByteReader r(plain, "blob chunk");
      uint32_t raw_size = r.u32();
      if (raw_size > e.info.size - out.size())
        throw FormatError("chunk of " + std::to_string(raw_size) + " bytes overflows the blob");
      auto data = zstd_decompress(r.raw(r.remaining()), raw_size, kSnapshotMaxBlockRaw);
      out.insert(out.end(), data.begin(), data.end());
    } catch (const FormatError& err) {
      throw FormatError(
          describe(path, e) + " chunk at offset " + std::to_string(at) + ": " + err.what(),
          static_cast<int64_t>(at));
    }
  });
  if (out.size() != e.info.size)
    throw FormatError(describe(path, e) + ": decoded " + std::to_string(out.size()) +
                          " bytes, the table says " + std::to_string(e.info.size),
                      static_cast<int64_t>(e.info.file_offset));
  return out;
}

void SnapshotReader::Impl::decode_memory(const TableEntry& e, const RunCallback& on_run) const {
  const uint64_t pages = page_count(e.info.size);
  uint64_t next_page = 0;  // extents must be ascending and disjoint
  uint64_t stored_pages = 0;
  std::vector<Extent> extents;
  for_each_payload(e, FrameType::kMemoryBlock, [&](std::span<const uint8_t> plain, uint64_t at) {
    std::vector<uint8_t> data;
    try {
      ByteReader r(plain, "memory block");
      uint32_t count = r.u32();
      if (count == 0 || count > kMaxPagesPerBlock)
        throw FormatError("block has " + std::to_string(count) + " extents");
      extents.clear();
      uint64_t raw = 0;
      for (uint32_t i = 0; i < count; ++i) {
        Extent x{r.u64(), r.u32()};
        if (x.page_count == 0 || x.page_count > kMaxPagesPerBlock || x.first_page < next_page ||
            x.first_page >= pages || x.page_count > pages - x.first_page)
          throw FormatError("extent of " + std::to_string(x.page_count) + " pages at page " +
                            std::to_string(x.first_page) +
                            " is out of order or outside the region of " + std::to_string(pages) +
                            " pages");
        next_page = x.first_page + x.page_count;
        raw += (uint64_t{x.page_count} - 1) * kSnapshotPageSize +
               page_bytes(e.info.size, next_page - 1);
        if (raw > kSnapshotMaxBlockRaw) throw FormatError("block holds more than 4 MiB");
        stored_pages += x.page_count;
        extents.push_back(x);
      }
      uint32_t raw_size = r.u32();
      if (raw_size != raw)
        throw FormatError("block says " + std::to_string(raw_size) + " raw bytes, its extents " +
                          std::to_string(raw));
      data = zstd_decompress(r.raw(r.remaining()), raw_size, kSnapshotMaxBlockRaw);
    } catch (const FormatError& err) {
      throw FormatError(
          describe(path, e) + " block at offset " + std::to_string(at) + ": " + err.what(),
          static_cast<int64_t>(at));
    }
    size_t pos = 0;
    for (const auto& x : extents) {
      uint64_t bytes = (uint64_t{x.page_count} - 1) * kSnapshotPageSize +
                       page_bytes(e.info.size, x.first_page + x.page_count - 1);
      on_run(x.first_page * kSnapshotPageSize, std::span(data).subspan(pos, bytes));
      pos += bytes;
    }
  });
  if (stored_pages != e.info.nonzero_pages)
    throw FormatError(describe(path, e) + ": holds " + std::to_string(stored_pages) +
                          " pages, the table says " + std::to_string(e.info.nonzero_pages),
                      static_cast<int64_t>(e.info.file_offset));
}

SnapshotReader SnapshotReader::open(const std::filesystem::path& path,
                                    const std::optional<Key>& key) {
  auto impl = std::make_unique<Impl>(PosixFile::open_read(path), path);
  impl->open(key);
  return SnapshotReader(std::move(impl));
}

SnapshotReader::SnapshotReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SnapshotReader::SnapshotReader(SnapshotReader&&) noexcept = default;
SnapshotReader& SnapshotReader::operator=(SnapshotReader&&) noexcept = default;
SnapshotReader::~SnapshotReader() = default;

bool SnapshotReader::encrypted() const { return impl_->header.encrypted(); }
uint16_t SnapshotReader::format_minor() const { return impl_->header.minor; }
const Digest& SnapshotReader::stored_digest() const { return impl_->trailer.digest; }
const std::vector<SectionInfo>& SnapshotReader::sections() const { return impl_->infos; }

const SectionInfo* SnapshotReader::find(std::string_view name) const {
  for (const auto& info : impl_->infos)
    if (info.name == name) return &info;
  return nullptr;
}

std::vector<uint8_t> SnapshotReader::read_blob(std::string_view name) const {
  return impl_->decode_blob(impl_->entry(name, SectionKind::kBlob));
}

void SnapshotReader::read_memory(std::string_view name, const RunCallback& on_run) const {
  impl_->decode_memory(impl_->entry(name, SectionKind::kMemory), on_run);
}

void SnapshotReader::read_memory(std::string_view name, uint8_t* dest, uint64_t dest_size,
                                 ZeroPages zero_pages) const {
  const TableEntry& e = impl_->entry(name, SectionKind::kMemory);
  if (dest_size != e.info.size)
    throw Error(impl_->path.string() + ": memory region '" + e.info.name + "' is " +
                std::to_string(e.info.size) + " bytes, the destination " +
                std::to_string(dest_size));
  // Zero-filling a page this process never touched would fault it in for
  // nothing (it reads as zeros already): 0.5 s for a 128 MiB guest on these
  // hosts. So kFill skips whole pages that held_pages() says are not held.
  std::optional<std::vector<bool>> held;
  if (zero_pages == ZeroPages::kFill && dest_size > 0) held = held_pages(dest, dest_size);
  auto zero_fill = [&](uint64_t begin, uint64_t end) {
    while (begin < end) {
      const uint64_t page = begin / kHostPageSize;
      const uint64_t page_end = std::min(end, (page + 1) * kHostPageSize);
      const bool whole_page = begin % kHostPageSize == 0 && page_end - begin == kHostPageSize;
      if (!(held && whole_page && !(*held)[page])) std::memset(dest + begin, 0, page_end - begin);
      begin = page_end;
    }
  };
  uint64_t filled = 0;  // everything below has been written
  impl_->decode_memory(e, [&](uint64_t offset, std::span<const uint8_t> bytes) {
    if (zero_pages == ZeroPages::kFill) zero_fill(filled, offset);
    std::memcpy(dest + offset, bytes.data(), bytes.size());
    filled = offset + bytes.size();
  });
  // (An empty region may come with a null destination: memset must not see it.)
  if (zero_pages == ZeroPages::kFill && dest_size > filled) zero_fill(filled, dest_size);
}

SnapshotVerifyReport SnapshotReader::verify() const { return verify_file(impl_->path, impl_->key); }

}  // namespace librr
