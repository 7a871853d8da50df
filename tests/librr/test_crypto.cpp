// Checks of the crypto/compress helpers the log relies on.
#include <gtest/gtest.h>

#include "librr/compress.h"
#include "librr/crypto.h"
#include "librr/error.h"

using namespace librr;

TEST(Compress, SizeLiesAreRejectedBeforeDecompressing) {
  std::vector<uint8_t> data(10000, 7);
  auto z = zstd_compress(data);
  EXPECT_EQ(zstd_decompress(z, data.size()), data);
  EXPECT_THROW(zstd_decompress(z, data.size() + 1), FormatError);
  EXPECT_THROW(zstd_decompress(z, 64u << 20), FormatError);
  EXPECT_THROW(zstd_decompress(z, data.size(), 100), FormatError) << "cap";
  std::vector<uint8_t> garbage{1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_THROW(zstd_decompress(garbage, 8), FormatError);
  EXPECT_THROW(zstd_decompress(std::span(z).first(z.size() / 2), data.size()), FormatError);
  // Reusing the per-thread context after a failure still works.
  EXPECT_EQ(zstd_decompress(z, data.size()), data);
}

TEST(Crypto, KeyFingerprintIsStableAndDistinct) {
  std::array<uint8_t, 32> a{}, b{};
  b[31] = 1;
  auto ka = Key::from_bytes(a), kb = Key::from_bytes(b);
  EXPECT_EQ(ka.fingerprint(), Key::from_bytes(a).fingerprint());
  EXPECT_NE(ka.fingerprint(), kb.fingerprint());
  EXPECT_EQ(ka.fingerprint().size(), 16u);
  EXPECT_NE(to_hex(mac256(ka, {})), to_hex(mac256(kb, {})));
}

TEST(Crypto, SecretstreamDetectsWrongKeyAndReordering) {
  auto key = Key::generate();
  StreamEncryptor enc(key);
  std::vector<uint8_t> m1{1, 2, 3}, m2{4, 5};
  auto c1 = enc.seal(m1), c2 = enc.seal(m2, true);
  {
    StreamDecryptor dec(key, enc.header());
    bool final = true;
    EXPECT_EQ(dec.open(c1, &final), m1);
    EXPECT_FALSE(final);
    EXPECT_EQ(dec.open(c2, &final), m2);
    EXPECT_TRUE(final);
  }
  {
    StreamDecryptor dec(key, enc.header());
    EXPECT_THROW(dec.open(c2), FormatError) << "out of order";
  }
  {
    StreamDecryptor dec(Key::generate(), enc.header());
    EXPECT_THROW(dec.open(c1), FormatError) << "wrong key";
  }
}
