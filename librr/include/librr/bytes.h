#pragma once
// Little-endian binary encoding shared by every librr format (log records,
// snapshot sections, device state). Readers are bounds-checked and throw
// FormatError instead of reading past the end: all input may be hostile.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "librr/error.h"

namespace librr {

class ByteWriter {
 public:
  void u8(uint8_t v) { buf_.push_back(v); }
  void u16(uint16_t v) { raw(&v, sizeof v); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  // Length-prefixed (u32) byte string.
  void bytes(std::span<const uint8_t> v) {
    u32(static_cast<uint32_t>(v.size()));
    raw(v.data(), v.size());
  }
  void string(std::string_view v) { bytes({reinterpret_cast<const uint8_t*>(v.data()), v.size()}); }
  // Fixed-size bytes, no length prefix.
  void raw(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  template <class T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    raw(&v, sizeof v);
  }
  const std::vector<uint8_t>& data() const { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }
  size_t size() const { return buf_.size(); }

 private:
  std::vector<uint8_t> buf_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data, std::string_view what = "buffer")
      : data_(data), what_(what) {}
  uint8_t u8() { return scalar<uint8_t>(); }
  uint16_t u16() { return scalar<uint16_t>(); }
  uint32_t u32() { return scalar<uint32_t>(); }
  uint64_t u64() { return scalar<uint64_t>(); }
  int64_t i64() { return scalar<int64_t>(); }
  bool boolean() { return u8() != 0; }
  std::span<const uint8_t> bytes() {
    uint32_t n = u32();
    return raw(n);
  }
  std::vector<uint8_t> bytes_vec() {
    auto s = bytes();
    return {s.begin(), s.end()};
  }
  std::string string() {
    auto s = bytes();
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }
  std::span<const uint8_t> raw(size_t n) {
    need(n);
    auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  void raw_into(void* dst, size_t n) {
    auto s = raw(n);
    std::memcpy(dst, s.data(), n);
  }
  template <class T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    raw_into(&v, sizeof v);
    return v;
  }
  size_t position() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  // The bytes not read yet, without consuming them (for codes of their own
  // length, such as varints: read, then raw() what they took).
  std::span<const uint8_t> unread() const { return data_.subspan(pos_); }
  bool at_end() const { return pos_ == data_.size(); }
  // Throws unless every byte was consumed: trailing garbage is corruption too.
  void expect_end() const {
    if (!at_end()) [[unlikely]]
      throw_trailing();
  }

 private:
  template <class T>
  T scalar() {
    T v;
    raw_into(&v, sizeof v);
    return v;
  }
  // Inlined into every read (the log reader makes several per record); the
  // message is built out of line, only when the check fails.
  void need(size_t n) const {
    if (n > data_.size() - pos_) [[unlikely]]
      throw_truncated(n);
  }
  [[noreturn, gnu::cold, gnu::noinline]] void throw_trailing() const {
    throw FormatError(
        std::string(what_) + ": " + std::to_string(remaining()) + " unexpected trailing bytes",
        static_cast<int64_t>(pos_));
  }
  [[noreturn, gnu::cold, gnu::noinline]] void throw_truncated(size_t n) const {
    throw FormatError(std::string(what_) + ": truncated (need " + std::to_string(n) +
                          " bytes, have " + std::to_string(data_.size() - pos_) + ")",
                      static_cast<int64_t>(pos_));
  }
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string_view what_;
};

}  // namespace librr
