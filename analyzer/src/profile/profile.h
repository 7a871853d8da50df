#pragma once
// A loaded ISF profile (ours or dwarf2json's): symbol addresses, type sizes
// and field offsets, the kernel banner it was made from. Lookups that fail
// throw ProfileError naming the profile and the missing symbol/type/field, so
// an OS model on a kernel whose layout differs says exactly what it lacked.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "librr/error.h"

namespace analyzer {

class ProfileError : public librr::Error {
 public:
  using librr::Error::Error;
};

struct FieldInfo {
  uint64_t offset = 0;  // from the start of the enclosing type
  nlohmann::json type;  // ISF type descriptor
};

class Profile {
 public:
  // Throws librr::Error (unreadable file) or librr::FormatError (not ISF).
  static Profile load(const std::filesystem::path& path);
  static Profile from_json(nlohmann::json document, std::string source);

  const std::string& source() const { return source_; }
  const nlohmann::json& document() const { return document_; }
  // "linux", "rr-test-guest", or "" when the profile does not say.
  std::string os() const;
  // The kernel's linux_banner as stored in the profile: symbols.linux_banner
  // .constant_data (what dwarf2json writes), else our metadata; NUL-trimmed.
  std::optional<std::string> linux_banner() const;

  std::optional<uint64_t> find_symbol(const std::string& name) const;
  uint64_t symbol(const std::string& name) const;
  bool has_type(const std::string& name) const;
  // Size of a user type, base type ("pointer", "int", ...) or enum.
  uint64_t type_size(const std::string& name) const;
  // Size of what a type descriptor describes (arrays: count x element).
  uint64_t descriptor_size(const nlohmann::json& descriptor) const;
  // `path` is a field name or a dotted path ("d_name.name"); anonymous
  // struct/union members are searched through, as C does.
  FieldInfo field(const std::string& type, const std::string& path) const;
  std::optional<FieldInfo> find_field(const std::string& type, const std::string& path) const;
  uint64_t offset_of(const std::string& type, const std::string& path) const {
    return field(type, path).offset;
  }

 private:
  Profile(nlohmann::json document, std::string source);
  std::optional<FieldInfo> find_member(const std::string& type, const std::string& name) const;

  nlohmann::json document_;
  std::string source_;
};

}  // namespace analyzer
