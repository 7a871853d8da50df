// Whole-file verification of a snapshot: every check the format allows,
// reported (not thrown) with the first problem, its kind and its offset.
#include "librr/snapshot.h"
#include "posix_file.h"
#include "snapshot_format.h"
#include "snapshot_reader_impl.h"

namespace librr {

using namespace snapshot_format;
using Problem = SnapshotVerifyReport::Problem;

std::string_view to_string(Problem problem) {
  switch (problem) {
    case Problem::kNone:
      return "ok";
    case Problem::kIo:
      return "I/O error";
    case Problem::kTruncated:
      return "truncated";
    case Problem::kBadHeader:
      return "bad header";
    case Problem::kBadTrailer:
      return "bad trailer";
    case Problem::kChecksum:
      return "checksum mismatch";
    case Problem::kDigest:
      return "digest mismatch";
    case Problem::kDecryption:
      return "decryption failed";
    case Problem::kStructure:
      return "structure error";
    case Problem::kWrongKey:
      return "wrong or missing key";
  }
  return "unknown";
}

namespace {

struct VerifyFailure {
  Problem problem;
  int64_t offset;
  std::string message;
};

[[noreturn]] void fail(Problem problem, const FormatError& e) {
  throw VerifyFailure{problem, e.offset(), e.what()};
}

Digest digest_of_range(const PosixFile& file, uint64_t length) {
  Hasher hasher;
  std::vector<uint8_t> buffer(1 << 20);
  for (uint64_t done = 0; done < length;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), length - done));
    file.read_exact_at(buffer.data(), n, done);
    hasher.update(std::span(buffer).first(n));
    done += n;
  }
  return hasher.finish();
}

// Checks what can be checked without the key: header, trailer, each frame's
// checksum in file order, and the digest.
void verify_layout(const PosixFile& file, SnapshotVerifyReport& report, bool& encrypted) {
  const std::string name = file.path().string();
  const uint64_t size = file.size();
  std::vector<uint8_t> header_bytes(std::min<uint64_t>(size, kHeaderSize));
  file.read_exact_at(header_bytes.data(), header_bytes.size(), 0);
  FileHeader header;
  try {
    header = FileHeader::decode(header_bytes, name);
  } catch (const FormatError& e) {
    fail(size < kHeaderSize ? Problem::kTruncated : Problem::kBadHeader, e);
  }
  encrypted = header.encrypted();
  if (size < kHeaderSize + kFrameHeaderSize + kTrailerSize)
    throw VerifyFailure{Problem::kTruncated, static_cast<int64_t>(size),
                        name + ": truncated snapshot (" + std::to_string(size) + " bytes)"};
  std::array<uint8_t, kTrailerSize> trailer_bytes{};
  file.read_exact_at(trailer_bytes.data(), kTrailerSize, size - kTrailerSize);
  Trailer trailer;
  try {
    trailer = Trailer::decode(trailer_bytes, size, name);
  } catch (const FormatError& e) {
    fail(Problem::kBadTrailer, e);
  }
  try {
    uint64_t offset = kHeaderSize;
    while (offset < trailer.table_offset) {
      Frame frame = read_frame(file, offset, trailer.table_offset);
      if (frame.type == FrameType::kSectionTable)
        throw FormatError(name + ": section table frame before the table offset",
                          static_cast<int64_t>(offset));
      offset = frame.end();
    }
    Frame table = read_frame(file, trailer.table_offset, size - kTrailerSize);
    if (table.type != FrameType::kSectionTable || table.end() != size - kTrailerSize)
      throw FormatError(name + ": the trailer does not point at the section table",
                        static_cast<int64_t>(trailer.table_offset));
  } catch (const ChecksumError& e) {
    fail(Problem::kChecksum, e);
  } catch (const FormatError& e) {
    fail(Problem::kStructure, e);
  }
  report.computed_digest = digest_of_range(file, size - kTrailerSize + kTrailerDigestOffset);
  if (!digests_equal(*report.computed_digest, trailer.digest))
    throw VerifyFailure{
        Problem::kDigest, static_cast<int64_t>(size - kTrailerSize + kTrailerDigestOffset),
        name + ": BLAKE2b digest mismatch (stored " + to_hex(trailer.digest) + ", computed " +
            to_hex(*report.computed_digest) + "): the file was modified"};
}

// Decrypts and decodes every section.
void verify_contents(const std::filesystem::path& path, const std::optional<Key>& key) {
  try {
    SnapshotReader reader = SnapshotReader::open(path, key);
    for (const auto& info : reader.sections()) {
      if (info.kind == SectionKind::kBlob)
        reader.read_blob(info.name);
      else
        reader.read_memory(info.name, [](uint64_t, std::span<const uint8_t>) {});
    }
  } catch (const KeyError& e) {
    throw VerifyFailure{Problem::kWrongKey, 0, e.what()};
  } catch (const DecryptionError& e) {
    fail(Problem::kDecryption, e);
  } catch (const ChecksumError& e) {
    fail(Problem::kChecksum, e);
  } catch (const FormatError& e) {
    fail(Problem::kStructure, e);
  }
}

}  // namespace

SnapshotVerifyReport SnapshotReader::verify_file(const std::filesystem::path& path,
                                                 const std::optional<Key>& key) {
  SnapshotVerifyReport report;
  try {
    PosixFile file = PosixFile::open_read(path);
    bool encrypted = false;
    verify_layout(file, report, encrypted);
    if (encrypted && !key) {
      report.message = path.string() +
                       ": encrypted; checksums and digest verified, contents not decrypted "
                       "(no key given)";
      return report;
    }
    verify_contents(path, key);
    report.contents_checked = true;
    report.message = path.string() + ": ok";
  } catch (const VerifyFailure& f) {
    report.ok = false;
    report.problem = f.problem;
    report.offset = f.offset;
    report.message = f.message;
  } catch (const FormatError& e) {  // a short read: the file changed or ends early
    report.ok = false;
    report.problem = Problem::kTruncated;
    report.offset = e.offset();
    report.message = e.what();
  } catch (const Error& e) {
    report.ok = false;
    report.problem = Problem::kIo;
    report.message = e.what();
  }
  return report;
}

}  // namespace librr
