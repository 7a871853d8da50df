#pragma once
// Machine snapshot files (.rrsnap): the whole state of a virtual machine at one
// instant, as named sections. A VMM stores each device's state as an opaque
// versioned blob ("vcpu0", "uart0", "pic", ...) and each guest RAM region as a
// memory section. Memory is stored sparsely: all-zero 4 KiB pages are skipped
// and the rest is zstd-compressed in blocks of at most 4 MiB, streamed from
// the guest's own mapping so RAM is never held twice.
//
// Every frame carries an XXH3 checksum and the whole file a BLAKE2b-256
// digest (in the trailer; the recording manifest records it). With a key the
// contents are encrypted and authenticated (XChaCha20-Poly1305 secretstream).
// Byte-level layout: schemas/snapshot-format.md.
//
// All input is treated as hostile: every length is checked against a fixed
// cap and against the file size before anything is allocated.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "librr/crypto.h"
#include "librr/error.h"

namespace librr {

class DeferredSync;  // deferred_sync.h

inline constexpr uint16_t kSnapshotFormatMajor = 1;
inline constexpr uint16_t kSnapshotFormatMinor = 0;
inline constexpr uint32_t kSnapshotPageSize = 4096;
// Largest amount of raw data one compressed block (or blob chunk) holds.
inline constexpr uint32_t kSnapshotMaxBlockRaw = 4u << 20;
// Limits a reader enforces before allocating anything.
inline constexpr uint64_t kSnapshotMaxBlobSize = uint64_t{1} << 30;
inline constexpr size_t kSnapshotMaxNameLength = 255;
inline constexpr size_t kSnapshotMaxSections = 4096;

// The snapshot is encrypted and no key, or a different key, was given.
class KeyError : public Error {
 public:
  using Error::Error;
};

enum class SectionKind : uint8_t { kBlob = 1, kMemory = 2 };

struct SectionInfo {
  std::string name;
  SectionKind kind = SectionKind::kBlob;
  // Blob: the VMM's own format version of these bytes. Memory: always 1.
  uint32_t version = 0;
  uint64_t guest_phys_base = 0;  // memory only
  uint64_t size = 0;             // raw bytes: blob length or region size
  uint64_t nonzero_pages = 0;    // memory only: pages actually stored
  uint64_t file_offset = 0;      // where the section's frames start
  uint64_t stored_size = 0;      // bytes the section occupies in the file
};

struct SnapshotWriteOptions {
  std::optional<Key> key;  // set: encrypt the entire machine state
  int compression_level = 3;
  // Set: finish() leaves the fsync of the file and its directory to it
  // (not owned; outlives the writer's finish()).
  DeferredSync* deferred_sync = nullptr;
};

class SnapshotWriter {
 public:
  using Options = SnapshotWriteOptions;
  // Creates `path`; refuses to overwrite an existing file. If the writer is
  // destroyed before finish() (e.g. by an exception), the partial file is removed.
  explicit SnapshotWriter(const std::filesystem::path& path, Options options = {});
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  void add_blob(std::string_view name, uint32_t version, std::span<const uint8_t> bytes);
  // Streams `size` bytes of guest memory starting at `host`, which the guest
  // sees at `guest_phys_base`. `size` need not be a multiple of the page size.
  void add_memory(std::string_view name, uint64_t guest_phys_base, const uint8_t* host,
                  uint64_t size);
  // Writes the section table and trailer, fsyncs (or queues the fsync on
  // options.deferred_sync), and returns the file's
  // BLAKE2b-256 digest (the value the manifest records).
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What verify() found. `ok` is false on the first problem, which is described
// with the file offset it was found at and its kind.
struct SnapshotVerifyReport {
  enum class Problem {
    kNone,
    kIo,          // the file cannot be read
    kTruncated,   // shorter than its structure says
    kBadHeader,   // magic, version, flags or header checksum
    kBadTrailer,  // trailer magic or layout
    kChecksum,    // an XXH3 frame checksum does not match
    kDigest,      // the BLAKE2b digest of the file does not match the trailer
    kDecryption,  // authentication failed: wrong key or tampered data
    kStructure,   // inconsistent table, frame or block contents
    kWrongKey,    // the key given is not the one the snapshot was written with
  };
  bool ok = true;
  Problem problem = Problem::kNone;
  int64_t offset = -1;
  std::string message;
  // BLAKE2b-256 of the file as computed while verifying (valid whenever the
  // whole file could be read, even if some other check failed).
  std::optional<Digest> computed_digest;
  // False when the snapshot is encrypted and no key was given: then only the
  // frame checksums and the digest were checked, not decryption and decoding.
  bool contents_checked = false;
};
std::string_view to_string(SnapshotVerifyReport::Problem problem);

class SnapshotReader {
 public:
  // How read_memory() treats pages that are not stored (all-zero pages).
  enum class ZeroPages { kFill, kLeaveUntouched };
  // Called for each run of stored (non-zero) bytes, in ascending order.
  // `region_offset` is relative to the start of the region.
  using RunCallback = std::function<void(uint64_t region_offset, std::span<const uint8_t> bytes)>;

  // Reads and checks the header, trailer and section table. Throws
  // FormatError (with the offset) for a damaged file, KeyError for a missing
  // or wrong key, SystemError for I/O problems.
  static SnapshotReader open(const std::filesystem::path& path,
                             const std::optional<Key>& key = std::nullopt);
  // Checks every byte of a file without throwing for format problems: header,
  // trailer, table, every frame checksum, the whole-file digest and, when the
  // contents can be decrypted, every block's decompression and layout.
  static SnapshotVerifyReport verify_file(const std::filesystem::path& path,
                                          const std::optional<Key>& key = std::nullopt);

  SnapshotReader(SnapshotReader&&) noexcept;
  SnapshotReader& operator=(SnapshotReader&&) noexcept;
  ~SnapshotReader();

  bool encrypted() const;
  uint16_t format_minor() const;
  // The digest stored in the trailer; verify() recomputes it.
  const Digest& stored_digest() const;
  const std::vector<SectionInfo>& sections() const;
  // nullptr when there is no such section.
  const SectionInfo* find(std::string_view name) const;

  // Throws Error if `name` is missing or not a blob.
  std::vector<uint8_t> read_blob(std::string_view name) const;
  void read_memory(std::string_view name, const RunCallback& on_run) const;
  // `dest_size` must equal the region size; zero pages are zero-filled or
  // left as they are (e.g. a freshly mmap'd region is already zero).
  void read_memory(std::string_view name, uint8_t* dest, uint64_t dest_size,
                   ZeroPages zero_pages = ZeroPages::kFill) const;

  SnapshotVerifyReport verify() const;

 private:
  struct Impl;
  explicit SnapshotReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace librr
