#pragma once
// Hashing, keyed MACs and authenticated encryption for librr's formats, all on
// libsodium (BLAKE2b, XChaCha20-Poly1305 secretstream) plus XXH3 for fast
// non-cryptographic checksums. One place for every primitive, so formats never
// call the libraries directly.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace librr {

// BLAKE2b-256.
using Digest = std::array<uint8_t, 32>;

Digest hash256(std::span<const uint8_t> data);
std::string to_hex(std::span<const uint8_t> data);
// Parses lowercase or uppercase hex; throws FormatError on odd length or bad digits.
std::vector<uint8_t> from_hex(std::string_view hex);

// Incremental BLAKE2b-256, optionally keyed (then it is a MAC).
class Hasher {
 public:
  Hasher();
  explicit Hasher(std::span<const uint8_t> key);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  Hasher& update(std::span<const uint8_t> data);
  template <class T>
  Hasher& update_pod(const T& v) {
    return update({reinterpret_cast<const uint8_t*>(&v), sizeof v});
  }
  Digest finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// XXH3-64: fast checksum for detecting accidental corruption.
uint64_t checksum64(std::span<const uint8_t> data);

// A 256-bit secret key. Key files hold 64 hex digits (and an optional newline)
// and are created with mode 0600.
class Key {
 public:
  static Key generate();
  static Key load_file(const std::filesystem::path& path);
  static Key from_bytes(std::span<const uint8_t> bytes);
  void save_file(const std::filesystem::path& path) const;
  std::span<const uint8_t> bytes() const { return bytes_; }
  // A short public identifier of the key (not the key): lets a reader say
  // "this log was written with a different key" before trying to decrypt.
  std::string fingerprint() const;
  ~Key();
  Key(const Key&) = default;
  Key& operator=(const Key&) = default;

 private:
  Key() = default;
  std::array<uint8_t, 32> bytes_{};
};

// Keyed BLAKE2b-256.
Digest mac256(const Key& key, std::span<const uint8_t> data);

// Constant-time comparison.
bool digests_equal(const Digest& a, const Digest& b);

// Authenticated encryption of a stream of messages (libsodium
// crypto_secretstream_xchacha20poly1305): detects tampering, truncation,
// reordering and a wrong key. The 24-byte header is stored in the clear.
class StreamEncryptor {
 public:
  static constexpr size_t kHeaderSize = 24;
  static constexpr size_t kOverhead = 17;  // per message
  explicit StreamEncryptor(const Key& key);
  ~StreamEncryptor();
  const std::array<uint8_t, kHeaderSize>& header() const { return header_; }
  // Encrypts one message; `final` marks the end of the stream.
  std::vector<uint8_t> seal(std::span<const uint8_t> plaintext, bool final = false);

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::array<uint8_t, kHeaderSize> header_{};
};

class StreamDecryptor {
 public:
  // Throws FormatError if the header is malformed.
  StreamDecryptor(const Key& key, std::span<const uint8_t> header);
  ~StreamDecryptor();
  // Decrypts the next message; throws FormatError("wrong key or corrupted
  // data") if authentication fails. Sets *final when the message ended the stream.
  std::vector<uint8_t> open(std::span<const uint8_t> ciphertext, bool* final = nullptr);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace librr
