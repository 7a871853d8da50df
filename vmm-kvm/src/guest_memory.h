#pragma once
// Bounds-checked access to guest physical memory. Every address a guest
// hands a device goes through here: a bad address yields nullptr/false,
// never a host pointer outside guest RAM.
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

namespace vmm {

class GuestMemory {
 public:
  GuestMemory() = default;
  GuestMemory(uint8_t* host_base, uint64_t size) : base_(host_base), size_(size) {}

  uint64_t size() const { return size_; }
  uint8_t* host_base() const { return base_; }

  // Host pointer for [gpa, gpa+len), or nullptr if any byte lies outside RAM
  // (overflow-safe).
  uint8_t* translate(uint64_t gpa, uint64_t len) const {
    if (gpa > size_ || len > size_ - gpa) return nullptr;
    return base_ + gpa;
  }
  bool read(uint64_t gpa, void* dst, uint64_t len) const {
    const uint8_t* p = translate(gpa, len);
    if (!p) return false;
    std::memcpy(dst, p, len);
    return true;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) const {
    uint8_t* p = translate(gpa, len);
    if (!p) return false;
    std::memcpy(p, src, len);
    return true;
  }
  template <class T>
  std::optional<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    if (!read(gpa, &v, sizeof v)) return std::nullopt;
    return v;
  }
  template <class T>
  bool write_obj(uint64_t gpa, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, &v, sizeof v);
  }

 private:
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace vmm
