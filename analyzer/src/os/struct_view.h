#pragma once
// A typed window on a guest kernel object: the profile says where each field
// is and how big, KernelMemory reads it. Errors name the type, field and
// address, e.g. "task_struct.comm at 0xffffffff82012340".
#include <cstdint>
#include <string>

#include "os/kernel_memory.h"
#include "profile/profile.h"

namespace analyzer {

class StructView {
 public:
  StructView(const Profile& profile, const KernelMemory& memory, std::string type, uint64_t address)
      : profile_(&profile), memory_(&memory), type_(std::move(type)), address_(address) {}

  const std::string& type() const { return type_; }
  uint64_t address() const { return address_; }
  bool has(const std::string& field) const {
    return profile_->find_field(type_, field).has_value();
  }
  uint64_t address_of(const std::string& field) const {
    return address_ + profile_->offset_of(type_, field);
  }
  // Integer, enum, bool, pointer or bitfield member, zero-extended.
  uint64_t unsigned_value(const std::string& field) const;
  // Same, sign-extended from the field's width when its base type is signed.
  int64_t signed_value(const std::string& field) const;
  // A char array member up to its first NUL.
  std::string char_array(const std::string& field) const;
  // The struct a member is (embedded) or points to (pointer member).
  StructView member(const std::string& field) const;
  StructView deref(const std::string& field) const;
  // Another object of a named type at an address (for container_of walks).
  StructView at(const std::string& type, uint64_t address) const {
    return StructView(*profile_, *memory_, type, address);
  }

 private:
  std::string what(const std::string& field) const;

  const Profile* profile_;
  const KernelMemory* memory_;
  std::string type_;
  uint64_t address_;
};

}  // namespace analyzer
