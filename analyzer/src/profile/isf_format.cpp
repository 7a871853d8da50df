#include "profile/isf_format.h"

#include <sodium.h>

#include "librr/error.h"

namespace analyzer {

std::string base64_encode(std::span<const uint8_t> bytes) {
  constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL;
  std::string text(sodium_base64_encoded_len(bytes.size(), kVariant), '\0');
  sodium_bin2base64(text.data(), text.size(), bytes.data(), bytes.size(), kVariant);
  text.pop_back();  // the terminating NUL libsodium writes
  return text;
}

std::vector<uint8_t> base64_decode(const std::string& text) {
  std::vector<uint8_t> bytes(text.size() / 4 * 3 + 3);
  size_t length = 0;
  if (sodium_base642bin(bytes.data(), bytes.size(), text.data(), text.size(), nullptr, &length,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    throw librr::FormatError("constant_data is not valid base64");
  bytes.resize(length);
  return bytes;
}

}  // namespace analyzer
