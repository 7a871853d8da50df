#include "os/struct_view.h"

#include <fmt/format.h>

namespace analyzer {
namespace {

bool descriptor_is_signed(const Profile& profile, const nlohmann::json& type) {
  const std::string kind = type.value("kind", "");
  if (kind == "bitfield") return descriptor_is_signed(profile, type["type"]);
  const auto& doc = profile.document();
  if (kind == "base" && doc["base_types"].contains(type["name"]))
    return doc["base_types"][type["name"].get<std::string>()].value("signed", false);
  if (kind == "enum" && doc["enums"].contains(type["name"])) {
    const std::string base = doc["enums"][type["name"].get<std::string>()].value("base", "");
    return doc["base_types"].contains(base) && doc["base_types"][base].value("signed", false);
  }
  return false;
}

}  // namespace

std::string StructView::what(const std::string& field) const {
  return fmt::format("{}.{} at {:#x}", type_, field, address_);
}

uint64_t StructView::unsigned_value(const std::string& field) const {
  const FieldInfo info = profile_->field(type_, field);
  if (info.type.value("kind", "") == "bitfield") {
    const uint64_t storage = profile_->descriptor_size(info.type["type"]);
    const uint64_t raw = memory_->read_unsigned(address_ + info.offset, storage, what(field));
    const uint64_t position = info.type["bit_position"];
    const uint64_t length = info.type["bit_length"];
    const uint64_t mask = length >= 64 ? ~0ull : (1ull << length) - 1;
    return (raw >> position) & mask;
  }
  const uint64_t size = profile_->descriptor_size(info.type);
  return memory_->read_unsigned(address_ + info.offset, size, what(field));
}

int64_t StructView::signed_value(const std::string& field) const {
  const FieldInfo info = profile_->field(type_, field);
  const uint64_t value = unsigned_value(field);
  if (!descriptor_is_signed(*profile_, info.type)) return static_cast<int64_t>(value);
  const uint64_t bits = info.type.value("kind", "") == "bitfield"
                            ? info.type["bit_length"].get<uint64_t>()
                            : 8 * profile_->descriptor_size(info.type);
  if (bits >= 64) return static_cast<int64_t>(value);
  const uint64_t sign = 1ull << (bits - 1);
  return static_cast<int64_t>((value ^ sign) - sign);
}

std::string StructView::char_array(const std::string& field) const {
  const FieldInfo info = profile_->field(type_, field);
  return memory_->read_c_string(address_ + info.offset, profile_->descriptor_size(info.type),
                                what(field));
}

StructView StructView::member(const std::string& field) const {
  const FieldInfo info = profile_->field(type_, field);
  if (!info.type.contains("name"))
    throw ProfileError(fmt::format("{}.{} is not a struct member", type_, field));
  return at(info.type["name"], address_ + info.offset);
}

StructView StructView::deref(const std::string& field) const {
  const FieldInfo info = profile_->field(type_, field);
  if (info.type.value("kind", "") != "pointer" || !info.type["subtype"].contains("name"))
    throw ProfileError(fmt::format("{}.{} is not a pointer to a struct", type_, field));
  const uint64_t pointer = unsigned_value(field);
  if (pointer == 0) throw GuestReadError(fmt::format("{} is a NULL pointer", what(field)));
  return at(info.type["subtype"]["name"], pointer);
}

}  // namespace analyzer
