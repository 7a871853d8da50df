#pragma once
// Bounds-checked access to guest physical memory. Every address a guest
// hands a device goes through here: a bad address yields nullptr/false,
// never a host pointer outside guest RAM.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

namespace vmm {

// The guest pages the VMM itself wrote (device models: virtio rings and
// buffers), which KVM's dirty log does not see because the vCPU did not write
// them. Same layout as the dirty log (bit n = page n in 64-bit words), so
// Machine::take_dirty_log() reports both kinds of writes.
class UserspaceWrites {
 public:
  static constexpr uint64_t kPageShift = 12;
  explicit UserspaceWrites(uint64_t bytes)
      : words_(((bytes >> kPageShift) + 63) / 64), bits_(std::make_unique<Word[]>(words_)) {}
  void mark(uint64_t gpa, uint64_t len) {
    if (len == 0) return;
    for (uint64_t page = gpa >> kPageShift; page <= (gpa + len - 1) >> kPageShift; ++page)
      if (page / 64 < words_)
        bits_[page / 64].fetch_or(1ull << (page % 64), std::memory_order_relaxed);
  }
  // ORs the pages marked since the last call into `bitmap` (resized if
  // shorter) and clears them.
  void take_into(std::vector<uint64_t>& bitmap) {
    if (bitmap.size() < words_) bitmap.resize(words_, 0);
    for (uint64_t i = 0; i < words_; ++i)
      if (bits_[i].load(std::memory_order_relaxed) != 0)
        bitmap[i] |= bits_[i].exchange(0, std::memory_order_relaxed);
  }

 private:
  using Word = std::atomic<uint64_t>;
  uint64_t words_;
  std::unique_ptr<Word[]> bits_;
};

class GuestMemory {
 public:
  GuestMemory() = default;
  // `writes`, when given, is told of every write() (it must outlive the copies).
  GuestMemory(uint8_t* host_base, uint64_t size, UserspaceWrites* writes = nullptr)
      : base_(host_base), size_(size), writes_(writes) {}

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
    if (writes_) writes_->mark(gpa, len);
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
  UserspaceWrites* writes_ = nullptr;
};

}  // namespace vmm
