#include "librr/crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "librr/error.h"

namespace librr {
namespace {

// libsodium must be initialised once before use; sodium_init is idempotent
// and thread-safe.
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw Error("libsodium failed to initialise");
}

}  // namespace

Digest hash256(std::span<const uint8_t> data) {
  ensure_sodium();
  Digest d;
  crypto_generichash(d.data(), d.size(), data.data(), data.size(), nullptr, 0);
  return d;
}

std::string to_hex(std::span<const uint8_t> data) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(data.size() * 2);
  for (uint8_t b : data) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

std::vector<uint8_t> from_hex(std::string_view hex) {
  if (hex.size() % 2) throw FormatError("hex string has odd length " + std::to_string(hex.size()));
  auto nibble = [&](char c, size_t at) -> uint8_t {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw FormatError(std::string("bad hex digit '") + c + "'", static_cast<int64_t>(at));
  };
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] =
        static_cast<uint8_t>(nibble(hex[2 * i], 2 * i) << 4 | nibble(hex[2 * i + 1], 2 * i + 1));
  return out;
}

struct Hasher::State {
  crypto_generichash_state st;
};

Hasher::Hasher() : Hasher(std::span<const uint8_t>{}) {}

Hasher::Hasher(std::span<const uint8_t> key) : state_(std::make_unique<State>()) {
  ensure_sodium();
  crypto_generichash_init(&state_->st, key.empty() ? nullptr : key.data(), key.size(),
                          sizeof(Digest));
}

Hasher::~Hasher() = default;

Hasher& Hasher::update(std::span<const uint8_t> data) {
  crypto_generichash_update(&state_->st, data.data(), data.size());
  return *this;
}

Digest Hasher::finish() {
  Digest d;
  crypto_generichash_final(&state_->st, d.data(), d.size());
  return d;
}

uint64_t checksum64(std::span<const uint8_t> data) { return XXH3_64bits(data.data(), data.size()); }

Key Key::generate() {
  ensure_sodium();
  Key k;
  randombytes_buf(k.bytes_.data(), k.bytes_.size());
  return k;
}

Key Key::from_bytes(std::span<const uint8_t> bytes) {
  if (bytes.size() != 32)
    throw FormatError("key must be 32 bytes, got " + std::to_string(bytes.size()));
  Key k;
  std::memcpy(k.bytes_.data(), bytes.data(), 32);
  return k;
}

Key Key::load_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw SystemError("cannot read key file " + path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  if (text.size() != 64)
    throw FormatError("key file " + path.string() + ": expected 64 hex digits, found " +
                      std::to_string(text.size()) + " characters");
  try {
    return from_bytes(from_hex(text));
  } catch (const FormatError& e) {
    throw FormatError("key file " + path.string() + ": " + e.what());
  }
}

void Key::save_file(const std::filesystem::path& path) const {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("cannot create key file " + path.string());
  std::string text = to_hex(bytes_) + "\n";
  ssize_t n = ::write(fd, text.data(), text.size());
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (n != static_cast<ssize_t>(text.size())) throw_errno("cannot write key file " + path.string());
}

std::string Key::fingerprint() const {
  // Domain-separated so the fingerprint is not the MAC of anything real.
  static constexpr std::string_view kLabel = "librr key fingerprint v1";
  Hasher h(bytes_);
  h.update({reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size()});
  Digest d = h.finish();
  return to_hex(std::span<const uint8_t>(d.data(), 8));
}

Key::~Key() { sodium_memzero(bytes_.data(), bytes_.size()); }

Digest mac256(const Key& key, std::span<const uint8_t> data) {
  ensure_sodium();
  Digest d;
  crypto_generichash(d.data(), d.size(), data.data(), data.size(), key.bytes().data(),
                     key.bytes().size());
  return d;
}

bool digests_equal(const Digest& a, const Digest& b) {
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

struct StreamEncryptor::State {
  crypto_secretstream_xchacha20poly1305_state st;
};
struct StreamDecryptor::State {
  crypto_secretstream_xchacha20poly1305_state st;
};

static_assert(StreamEncryptor::kHeaderSize == crypto_secretstream_xchacha20poly1305_HEADERBYTES);
static_assert(StreamEncryptor::kOverhead == crypto_secretstream_xchacha20poly1305_ABYTES);

StreamEncryptor::StreamEncryptor(const Key& key) : state_(std::make_unique<State>()) {
  ensure_sodium();
  crypto_secretstream_xchacha20poly1305_init_push(&state_->st, header_.data(), key.bytes().data());
}

StreamEncryptor::~StreamEncryptor() { sodium_memzero(state_.get(), sizeof(State)); }

std::vector<uint8_t> StreamEncryptor::seal(std::span<const uint8_t> plaintext, bool final) {
  std::vector<uint8_t> out(plaintext.size() + kOverhead);
  unsigned long long len = 0;
  uint8_t tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                      : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  crypto_secretstream_xchacha20poly1305_push(&state_->st, out.data(), &len, plaintext.data(),
                                             plaintext.size(), nullptr, 0, tag);
  out.resize(len);
  return out;
}

StreamDecryptor::StreamDecryptor(const Key& key, std::span<const uint8_t> header)
    : state_(std::make_unique<State>()) {
  ensure_sodium();
  if (header.size() != StreamEncryptor::kHeaderSize ||
      crypto_secretstream_xchacha20poly1305_init_pull(&state_->st, header.data(),
                                                      key.bytes().data()) != 0)
    throw FormatError("invalid encryption header");
}

StreamDecryptor::~StreamDecryptor() { sodium_memzero(state_.get(), sizeof(State)); }

std::vector<uint8_t> StreamDecryptor::open(std::span<const uint8_t> ciphertext, bool* final) {
  if (ciphertext.size() < StreamEncryptor::kOverhead)
    throw FormatError("encrypted message too short (" + std::to_string(ciphertext.size()) +
                      " bytes)");
  std::vector<uint8_t> out(ciphertext.size() - StreamEncryptor::kOverhead);
  unsigned long long len = 0;
  uint8_t tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&state_->st, out.data(), &len, &tag,
                                                 ciphertext.data(), ciphertext.size(), nullptr,
                                                 0) != 0)
    throw FormatError("decryption failed: wrong key or corrupted data");
  out.resize(len);
  if (final) *final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
  return out;
}

}  // namespace librr
