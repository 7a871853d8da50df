#include "log_format.h"

#include <algorithm>

#include "librr/bytes.h"
#include "librr/error.h"
#include "log_compact.h"

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

namespace {

void encode_fixed(const ChunkHeader& h, ByteWriter& w) {
  w.u32(h.flags);
  w.u64(h.sequence);
  w.u64(h.first_record_index);
  w.u32(h.record_count);
  w.u32(h.raw_length);
  w.u32(h.stored_length);
  w.u32(0);  // reserved
  encode_position(w, h.first);
  encode_position(w, h.last);
  w.u64(h.payload_checksum);
  w.pod(h.prev_hash);
  w.pod(h.mac);
}

void encode_compact(const ChunkHeader& h, bool mac, ByteWriter& w) {
  std::vector<uint8_t> fields;
  for (uint64_t v : {uint64_t{h.flags}, h.sequence, h.first_record_index, uint64_t{h.record_count},
                     uint64_t{h.raw_length}, uint64_t{h.stored_length}, h.first.landmark,
                     h.first.async_seq, h.first.steps})
    logcompact::put_varint(fields, v);
  logcompact::put_position_delta(fields, h.first, h.last);
  const size_t size = 4 + 1 + fields.size() + 8 + sizeof h.prev_hash + (mac ? sizeof h.mac : 0) + 8;
  w.u8(static_cast<uint8_t>(size));
  w.raw(fields.data(), fields.size());
  w.u64(h.payload_checksum);
  w.pod(h.prev_hash);
  if (mac) w.pod(h.mac);
}

// Reads the fixed layout's fields after the magic.
void decode_fixed(ByteReader& r, ChunkHeader& h) {
  h.flags = r.u32();
  h.sequence = r.u64();
  h.first_record_index = r.u64();
  h.record_count = r.u32();
  h.raw_length = r.u32();
  h.stored_length = r.u32();
  if (r.u32() != 0) throw FormatError("reserved chunk header field is not zero");
  h.first = decode_position(r);
  h.last = decode_position(r);
  h.payload_checksum = r.u64();
  h.prev_hash = r.pod<Digest>();
  h.mac = r.pod<Digest>();
}

uint32_t u32_field(uint64_t v, const char* what) {
  if (v > UINT32_MAX) throw FormatError(std::string("chunk header ") + what + " exceeds 32 bits");
  return static_cast<uint32_t>(v);
}

// Reads the compact layout's fields, which start after the size byte;
// `bytes` is exactly the header.
void decode_compact(std::span<const uint8_t> bytes, bool mac, ChunkHeader& h) {
  size_t at = 5;
  auto next = [&](const char* what) { return logcompact::get_varint(bytes, at, what); };
  h.flags = u32_field(next("flags"), "flags");
  h.sequence = next("sequence");
  h.first_record_index = next("first record index");
  h.record_count = u32_field(next("record count"), "record count");
  h.raw_length = u32_field(next("raw length"), "raw length");
  h.stored_length = u32_field(next("stored length"), "stored length");
  h.first.landmark = next("first landmark");
  h.first.async_seq = next("first async_seq");
  h.first.steps = next("first steps");
  h.last = logcompact::get_position_delta(bytes, at, h.first);
  const size_t tail = 8 + sizeof h.prev_hash + (mac ? sizeof h.mac : 0) + 8;
  if (bytes.size() - at != tail)
    throw FormatError("chunk header size byte disagrees with its fields");
  ByteReader r(bytes.subspan(at, tail - 8), "chunk header");
  h.payload_checksum = r.u64();
  h.prev_hash = r.pod<Digest>();
  if (mac) h.mac = r.pod<Digest>();
}

}  // namespace

std::vector<uint8_t> ChunkHeader::encode(const ChunkLayout& layout) {
  ByteWriter w;
  w.pod(kChunkMagic);
  if (layout.compact)
    encode_compact(*this, layout.mac, w);
  else
    encode_fixed(*this, w);
  w.u64(checksum64(w.data()));
  header_size = static_cast<uint32_t>(w.data().size());
  return w.take();
}

size_t ChunkHeader::declared_size(std::span<const uint8_t> bytes, const ChunkLayout& layout) {
  if (!layout.compact) return kChunkHeaderSize;
  return bytes.size() < 5 ? 0 : bytes[4];
}

ChunkHeader ChunkHeader::decode(std::span<const uint8_t> bytes, const ChunkLayout& layout) {
  if (bytes.size() < 5) throw FormatError("chunk header is truncated");
  if (!std::equal(kChunkMagic.begin(), kChunkMagic.end(), bytes.begin()))
    throw FormatError("bad chunk magic");
  const size_t size = declared_size(bytes, layout);
  if (size < layout.min_size() || size > layout.max_size())
    throw FormatError("chunk header size " + std::to_string(size) + " is out of range");
  if (bytes.size() < size) throw FormatError("chunk header is truncated");
  bytes = bytes.first(size);
  uint64_t stored_checksum = ByteReader(bytes.last(8)).u64();
  if (stored_checksum != checksum64(bytes.first(size - 8)))
    throw FormatError("chunk header checksum mismatch");
  ChunkHeader h;
  if (layout.compact) {
    decode_compact(bytes, layout.mac, h);
  } else {
    ByteReader r(bytes.subspan(4), "chunk header");
    decode_fixed(r, h);
  }
  h.header_size = static_cast<uint32_t>(size);
  if (h.flags & ~kKnownChunkFlags)
    throw FormatError("unknown chunk flags " + std::to_string(h.flags));
  if (h.raw_length > kMaxRawLength || h.stored_length > kMaxStoredLength)
    throw FormatError("chunk lengths (raw " + std::to_string(h.raw_length) + ", stored " +
                      std::to_string(h.stored_length) + ") exceed the format's limits");
  if (h.record_count == 0 || h.record_count > h.raw_length / (kRecordFrameSize + 1))
    throw FormatError("chunk record count " + std::to_string(h.record_count) +
                      " is impossible for " + std::to_string(h.raw_length) + " raw bytes");
  if (h.last < h.first) throw FormatError("chunk's last position is before its first");
  return h;
}

Digest chunk_mac(const Key& key, std::span<const uint8_t> encoded_header, const ChunkLayout& layout,
                 std::span<const uint8_t> payload) {
  // Everything before the MAC field: [0, 128) in the fixed layout; in the
  // compact one the MAC is followed only by the header checksum.
  const size_t before_mac =
      layout.compact ? encoded_header.size() - sizeof(Digest) - 8 : kChunkMacOffset;
  Hasher h(key.bytes());
  h.update(encoded_header.first(before_mac));
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
