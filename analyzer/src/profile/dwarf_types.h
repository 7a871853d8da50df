#pragma once
// DWARF type DIEs -> ISF type descriptors and definitions (libdw). Internal to
// the profile generator. Types are deduplicated by name across compilation
// units (the kernel repeats every header type in each unit); anonymous structs
// and enums get a stable name from their layout, as dwarf2json names them
// "unnamed_<hash>".
#include <elfutils/libdw.h>

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace analyzer {

class DwarfTypeBuilder {
 public:
  // The ISF type descriptor of the type DW_AT_type of `die` names (void if none).
  nlohmann::json describe_type_of(Dwarf_Die* die);
  // The descriptor of a type DIE, defining what it needs in the tables.
  nlohmann::json describe(Dwarf_Die* type_die);
  // Called for every type DIE met while walking: defines it if complete.
  void define(Dwarf_Die* type_die);

  nlohmann::json& base_types() { return base_types_; }
  nlohmann::json& user_types() { return user_types_; }
  nlohmann::json& enums() { return enums_; }

 private:
  nlohmann::json describe_uncached(Dwarf_Die* die);
  nlohmann::json describe_array(Dwarf_Die* die);
  std::string define_record(Dwarf_Die* die, const char* kind);
  std::string define_enum(Dwarf_Die* die);
  std::string define_base(Dwarf_Die* die);
  nlohmann::json member(Dwarf_Die* member_die, uint64_t* offset);

  nlohmann::json base_types_ = nlohmann::json::object();
  nlohmann::json user_types_ = nlohmann::json::object();
  nlohmann::json enums_ = nlohmann::json::object();
  std::unordered_map<Dwarf_Off, nlohmann::json> descriptors_;  // by global DIE offset
  std::unordered_set<std::string> records_in_progress_;
};

// Unsigned value of an integer attribute (following DW_AT_specification /
// abstract_origin), or `fallback`.
uint64_t dwarf_unsigned(Dwarf_Die* die, unsigned attribute, uint64_t fallback);
bool dwarf_has(Dwarf_Die* die, unsigned attribute);

}  // namespace analyzer
