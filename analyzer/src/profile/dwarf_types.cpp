#include "profile/dwarf_types.h"

#include <dwarf.h>
#include <fmt/format.h>
#include <xxhash.h>

#include <vector>

namespace analyzer {
namespace {

using nlohmann::json;

json void_type() { return {{"kind", "base"}, {"name", "void"}}; }

std::string die_name(Dwarf_Die* die) {
  const char* name = dwarf_diename(die);
  return name != nullptr ? name : "";
}

bool signed_value(Dwarf_Die* die, unsigned attribute, int64_t* out) {
  Dwarf_Attribute attr;
  if (dwarf_attr_integrate(die, attribute, &attr) == nullptr) return false;
  Dwarf_Sword value;
  if (dwarf_formsdata(&attr, &value) != 0) return false;
  *out = value;
  return true;
}

// DW_AT_data_member_location: a constant, or (older producers) the
// expression DW_OP_plus_uconst N. Union members have none: offset 0.
uint64_t member_location(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  if (dwarf_attr(die, DW_AT_data_member_location, &attr) == nullptr) return 0;
  Dwarf_Word value;
  if (dwarf_formudata(&attr, &value) == 0) return value;
  Dwarf_Op* ops = nullptr;
  size_t count = 0;
  if (dwarf_getlocation(&attr, &ops, &count) == 0 && count == 1 && ops[0].atom == DW_OP_plus_uconst)
    return ops[0].number;
  return 0;
}

std::string hashed_name(const std::string& signature) {
  return fmt::format("unnamed_{:016x}", XXH3_64bits(signature.data(), signature.size()));
}

}  // namespace

uint64_t dwarf_unsigned(Dwarf_Die* die, unsigned attribute, uint64_t fallback) {
  Dwarf_Attribute attr;
  if (dwarf_attr_integrate(die, attribute, &attr) == nullptr) return fallback;
  Dwarf_Word value;
  return dwarf_formudata(&attr, &value) == 0 ? value : fallback;
}

bool dwarf_has(Dwarf_Die* die, unsigned attribute) { return dwarf_hasattr(die, attribute) != 0; }

json DwarfTypeBuilder::describe_type_of(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  Dwarf_Die type;
  if (dwarf_attr_integrate(die, DW_AT_type, &attr) == nullptr ||
      dwarf_formref_die(&attr, &type) == nullptr)
    return void_type();
  return describe(&type);
}

json DwarfTypeBuilder::describe(Dwarf_Die* type_die) {
  const Dwarf_Off offset = dwarf_dieoffset(type_die);
  if (auto it = descriptors_.find(offset); it != descriptors_.end()) return it->second;
  json descriptor = describe_uncached(type_die);
  descriptors_.emplace(offset, descriptor);
  return descriptor;
}

void DwarfTypeBuilder::define(Dwarf_Die* type_die) {
  switch (dwarf_tag(type_die)) {
    case DW_TAG_base_type:
    case DW_TAG_structure_type:
    case DW_TAG_union_type:
    case DW_TAG_class_type:
    case DW_TAG_enumeration_type:
    case DW_TAG_pointer_type:
      describe(type_die);
      break;
    default:
      break;
  }
}

json DwarfTypeBuilder::describe_uncached(Dwarf_Die* die) {
  switch (dwarf_tag(die)) {
    case DW_TAG_base_type:
      return {{"kind", "base"}, {"name", define_base(die)}};
    case DW_TAG_pointer_type:
    case DW_TAG_reference_type:
    case DW_TAG_rvalue_reference_type:
      if (!base_types_.contains("pointer"))
        base_types_["pointer"] = {{"size", dwarf_unsigned(die, DW_AT_byte_size, 8)},
                                  {"signed", false},
                                  {"kind", "int"},
                                  {"endian", "little"}};
      return {{"kind", "pointer"}, {"subtype", describe_type_of(die)}};
    case DW_TAG_typedef:
    case DW_TAG_const_type:
    case DW_TAG_volatile_type:
    case DW_TAG_restrict_type:
    case DW_TAG_atomic_type:
      return describe_type_of(die);
    case DW_TAG_structure_type:
      return {{"kind", "struct"}, {"name", define_record(die, "struct")}};
    case DW_TAG_class_type:
      return {{"kind", "class"}, {"name", define_record(die, "class")}};
    case DW_TAG_union_type:
      return {{"kind", "union"}, {"name", define_record(die, "union")}};
    case DW_TAG_enumeration_type:
      return {{"kind", "enum"}, {"name", define_enum(die)}};
    case DW_TAG_array_type:
      return describe_array(die);
    case DW_TAG_subroutine_type:
      return {{"kind", "function"}};
    default:
      return void_type();
  }
}

json DwarfTypeBuilder::describe_array(Dwarf_Die* die) {
  std::vector<uint64_t> counts;
  Dwarf_Die child;
  if (dwarf_child(die, &child) == 0) {
    do {
      if (dwarf_tag(&child) != DW_TAG_subrange_type) continue;
      uint64_t count = 0;
      int64_t upper = 0;
      if (dwarf_has(&child, DW_AT_count)) {
        count = dwarf_unsigned(&child, DW_AT_count, 0);
      } else if (signed_value(&child, DW_AT_upper_bound, &upper) && upper >= 0) {
        int64_t lower = 0;
        signed_value(&child, DW_AT_lower_bound, &lower);
        count = static_cast<uint64_t>(upper - lower + 1);
      }
      counts.push_back(count);  // 0: flexible array member
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  if (counts.empty()) counts.push_back(0);
  json element = describe_type_of(die);
  for (auto it = counts.rbegin(); it != counts.rend(); ++it)
    element = {{"kind", "array"}, {"count", *it}, {"subtype", element}};
  return element;
}

std::string DwarfTypeBuilder::define_base(Dwarf_Die* die) {
  std::string name = die_name(die);
  if (name.empty()) name = "unnamed_base";
  if (base_types_.contains(name)) return name;
  const uint64_t encoding = dwarf_unsigned(die, DW_AT_encoding, DW_ATE_signed);
  std::string kind = "int";
  bool is_signed = false;
  switch (encoding) {
    case DW_ATE_boolean:
      kind = "bool";
      break;
    case DW_ATE_float:
      kind = "float";
      is_signed = true;
      break;
    case DW_ATE_signed_char:
      kind = "char";
      is_signed = true;
      break;
    case DW_ATE_unsigned_char:
      kind = "char";
      break;
    case DW_ATE_signed:
      is_signed = true;
      break;
    default:
      break;
  }
  base_types_[name] = {{"size", dwarf_unsigned(die, DW_AT_byte_size, 0)},
                       {"signed", is_signed},
                       {"kind", kind},
                       {"endian", "little"}};
  return name;
}

json DwarfTypeBuilder::member(Dwarf_Die* die, uint64_t* offset) {
  json type = describe_type_of(die);
  *offset = member_location(die);
  if (!dwarf_has(die, DW_AT_bit_size)) return type;
  const uint64_t bit_length = dwarf_unsigned(die, DW_AT_bit_size, 0);
  uint64_t storage_bytes = dwarf_unsigned(die, DW_AT_byte_size, 0);
  if (storage_bytes == 0) {
    Dwarf_Attribute attr;
    Dwarf_Die type_die;
    Dwarf_Word size = 0;
    if (dwarf_attr_integrate(die, DW_AT_type, &attr) != nullptr &&
        dwarf_formref_die(&attr, &type_die) != nullptr &&
        dwarf_aggregate_size(&type_die, &size) == 0)
      storage_bytes = size;
  }
  if (storage_bytes == 0) storage_bytes = 4;
  uint64_t bit_position = 0;
  if (dwarf_has(die, DW_AT_data_bit_offset)) {
    // DWARF 4+: bits from the start of the structure. Express it relative to
    // an aligned storage unit of the member's type, as Volatility reads it.
    const uint64_t bits = dwarf_unsigned(die, DW_AT_data_bit_offset, 0);
    *offset = bits / (8 * storage_bytes) * storage_bytes;
    bit_position = bits - 8 * *offset;
  } else {
    // DWARF 2/3: DW_AT_bit_offset counts from the most significant bit of the
    // storage unit at data_member_location (big-endian view).
    const uint64_t from_msb = dwarf_unsigned(die, DW_AT_bit_offset, 0);
    bit_position = storage_bytes * 8 - from_msb - bit_length;
  }
  return {{"kind", "bitfield"},
          {"bit_position", bit_position},
          {"bit_length", bit_length},
          {"type", type}};
}

std::string DwarfTypeBuilder::define_record(Dwarf_Die* die, const char* kind) {
  std::string name = die_name(die);
  if (name.empty()) {
    // Named by layout so the same anonymous struct in many units is one type.
    std::string signature = fmt::format("{} {} {}", kind, dwarf_unsigned(die, DW_AT_byte_size, 0),
                                        dwarf_unsigned(die, DW_AT_decl_line, 0));
    Dwarf_Die child;
    if (dwarf_child(die, &child) == 0) {
      do {
        if (dwarf_tag(&child) != DW_TAG_member) continue;
        signature += fmt::format(" {}@{}:{}", die_name(&child), member_location(&child),
                                 dwarf_unsigned(&child, DW_AT_bit_size, 0));
      } while (dwarf_siblingof(&child, &child) == 0);
    }
    name = hashed_name(signature);
  }
  if (dwarf_has(die, DW_AT_declaration) || user_types_.contains(name) ||
      records_in_progress_.count(name) != 0)
    return name;
  records_in_progress_.insert(name);
  json fields = json::object();
  Dwarf_Die child;
  if (dwarf_child(die, &child) == 0) {
    do {
      if (dwarf_tag(&child) != DW_TAG_member) continue;
      uint64_t offset = 0;
      json type = member(&child, &offset);
      json field = {{"type", std::move(type)}, {"offset", offset}};
      std::string field_name = die_name(&child);
      if (field_name.empty()) {
        field["anonymous"] = true;
        field_name = fmt::format("unnamed_field_{:x}", offset);
        // Several anonymous members of a union share offset 0.
        for (int n = 1; fields.contains(field_name); ++n)
          field_name = fmt::format("unnamed_field_{:x}_{}", offset, n);
      }
      fields[field_name] = std::move(field);
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  user_types_[name] = {
      {"kind", kind}, {"size", dwarf_unsigned(die, DW_AT_byte_size, 0)}, {"fields", fields}};
  records_in_progress_.erase(name);
  return name;
}

std::string DwarfTypeBuilder::define_enum(Dwarf_Die* die) {
  json constants = json::object();
  bool negative = false;
  std::string signature = "enum";
  Dwarf_Die child;
  if (dwarf_child(die, &child) == 0) {
    do {
      if (dwarf_tag(&child) != DW_TAG_enumerator) continue;
      int64_t value = 0;
      signed_value(&child, DW_AT_const_value, &value);
      negative = negative || value < 0;
      constants[die_name(&child)] = value;
      signature += fmt::format(" {}={}", die_name(&child), value);
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  std::string name = die_name(die);
  if (name.empty()) name = hashed_name(signature);
  if (enums_.contains(name) || dwarf_has(die, DW_AT_declaration)) return name;
  const uint64_t size = dwarf_unsigned(die, DW_AT_byte_size, 4);
  // The base is the C type of that size and signedness (dwarf2json's choice).
  std::string base = negative ? (size == 8 ? "long int" : "int")
                              : (size == 8 ? "long unsigned int" : "unsigned int");
  if (size == 1) base = negative ? "signed char" : "unsigned char";
  if (size == 2) base = negative ? "short int" : "short unsigned int";
  enums_[name] = {{"size", size}, {"base", base}, {"constants", constants}};
  return name;
}

}  // namespace analyzer
