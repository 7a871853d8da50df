#include "log_format.h"

#include <algorithm>

#include "librr/bytes.h"
#include "librr/error.h"

namespace librr::logfmt {

std::vector<uint8_t> FileHeader::encode() const {
  ByteWriter w;
  w.pod(kFileMagic);
  w.u16(version_major);
  w.u16(version_minor);
  w.u32(static_cast<uint32_t>(kFileHeaderMinSize + creator.size()));
  w.u32(flags);
  w.pod(key_fingerprint);
  w.pod(stream_header);
  w.u64(created_unix_ns);
  w.string(creator);
  w.u64(checksum64(w.data()));
  return w.take();
}

size_t FileHeader::declared_size(std::span<const uint8_t> first16) {
  if (first16.size() < 16 || !std::equal(kFileMagic.begin(), kFileMagic.end(), first16.begin()))
    return 0;
  ByteReader r(first16.subspan(12, 4));
  return r.u32();
}

FileHeader FileHeader::decode(std::span<const uint8_t> bytes) {
  if (bytes.size() < kFileHeaderMinSize || bytes.size() > kFileHeaderMaxSize)
    throw FormatError("file header size " + std::to_string(bytes.size()) + " is out of range", 12);
  ByteReader r(bytes, "log file header");
  auto magic = r.pod<std::array<uint8_t, 8>>();
  if (magic != kFileMagic) throw FormatError("not a librr log (bad magic)", 0);
  uint64_t stored_checksum = ByteReader(bytes.last(8)).u64();
  if (stored_checksum != checksum64(bytes.first(bytes.size() - 8)))
    throw FormatError("file header checksum mismatch", static_cast<int64_t>(bytes.size() - 8));
  FileHeader h;
  h.version_major = r.u16();
  h.version_minor = r.u16();
  if (!is_readable_version(h.version_major, h.version_minor))
    throw FormatError("unsupported log format version " + std::to_string(h.version_major) + "." +
                          std::to_string(h.version_minor) + " (this librr reads 1.0 to " +
                          std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor) + ")",
                      8);
  uint32_t size = r.u32();
  if (size != bytes.size()) throw FormatError("file header size field disagrees", 12);
  h.flags = r.u32();
  if (h.flags & ~kKnownFileFlags)
    throw FormatError("unknown file header flags " + std::to_string(h.flags), 16);
  if ((h.flags & kFlagEncrypted) && !(h.flags & kFlagMac))
    throw FormatError("encrypted log without a MAC is not a valid combination", 16);
  h.key_fingerprint = r.pod<decltype(h.key_fingerprint)>();
  h.stream_header = r.pod<decltype(h.stream_header)>();
  h.created_unix_ns = r.u64();
  h.creator = r.string();
  r.u64();  // checksum, verified above
  r.expect_end();
  return h;
}

std::array<uint8_t, kChunkHeaderSize> ChunkHeader::encode() const {
  ByteWriter w;
  w.pod(kChunkMagic);
  w.u32(flags);
  w.u64(sequence);
  w.u64(first_record_index);
  w.u32(record_count);
  w.u32(raw_length);
  w.u32(stored_length);
  w.u32(0);  // reserved
  encode_position(w, first);
  encode_position(w, last);
  w.u64(payload_checksum);
  w.pod(prev_hash);
  w.pod(mac);
  w.u64(checksum64(w.data()));
  std::array<uint8_t, kChunkHeaderSize> out;
  std::copy(w.data().begin(), w.data().end(), out.begin());
  return out;
}

ChunkHeader ChunkHeader::decode(std::span<const uint8_t> bytes) {
  if (bytes.size() != kChunkHeaderSize) throw FormatError("chunk header has the wrong size");
  if (!std::equal(kChunkMagic.begin(), kChunkMagic.end(), bytes.begin()))
    throw FormatError("bad chunk magic");
  uint64_t stored_checksum = ByteReader(bytes.last(8)).u64();
  if (stored_checksum != checksum64(bytes.first(kChunkHeaderSize - 8)))
    throw FormatError("chunk header checksum mismatch");
  ByteReader r(bytes, "chunk header");
  r.raw(4);
  ChunkHeader h;
  h.flags = r.u32();
  h.sequence = r.u64();
  h.first_record_index = r.u64();
  h.record_count = r.u32();
  h.raw_length = r.u32();
  h.stored_length = r.u32();
  uint32_t reserved = r.u32();
  h.first = decode_position(r);
  h.last = decode_position(r);
  h.payload_checksum = r.u64();
  h.prev_hash = r.pod<Digest>();
  h.mac = r.pod<Digest>();
  if (h.flags & ~kKnownChunkFlags)
    throw FormatError("unknown chunk flags " + std::to_string(h.flags));
  if (reserved != 0) throw FormatError("reserved chunk header field is not zero");
  if (h.raw_length > kMaxRawLength || h.stored_length > kMaxStoredLength)
    throw FormatError("chunk lengths (raw " + std::to_string(h.raw_length) + ", stored " +
                      std::to_string(h.stored_length) + ") exceed the format's limits");
  if (h.record_count == 0 || h.record_count > h.raw_length / (kRecordFrameSize + 1))
    throw FormatError("chunk record count " + std::to_string(h.record_count) +
                      " is impossible for " + std::to_string(h.raw_length) + " raw bytes");
  if (h.last < h.first) throw FormatError("chunk's last position is before its first");
  return h;
}

Digest chunk_mac(const Key& key, std::span<const uint8_t> header_prefix,
                 std::span<const uint8_t> payload) {
  Hasher h(key.bytes());
  h.update(header_prefix.first(kChunkMacOffset));
  h.update(payload);
  return h.finish();
}

std::array<uint8_t, kFingerprintSize> fingerprint_bytes(const Key& key) {
  auto raw = from_hex(key.fingerprint());
  std::array<uint8_t, kFingerprintSize> out{};
  std::copy_n(raw.begin(), std::min(raw.size(), out.size()), out.begin());
  return out;
}

}  // namespace librr::logfmt
