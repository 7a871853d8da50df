#include "profile/profile.h"

#include <fstream>

#include "profile/isf_format.h"

namespace analyzer {

using nlohmann::json;

Profile Profile::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw librr::Error("cannot open profile " + path.string());
  json document;
  try {
    document = json::parse(in);
  } catch (const json::exception& e) {
    throw librr::FormatError(path.string() + ": not valid JSON: " + e.what());
  }
  return from_json(std::move(document), path.string());
}

Profile Profile::from_json(json document, std::string source) {
  if (!document.is_object()) throw librr::FormatError(source + ": an ISF profile is a JSON object");
  for (const char* section : {"metadata", "base_types", "user_types", "enums", "symbols"})
    if (!document.contains(section) || !document[section].is_object())
      throw librr::FormatError(source + ": not an ISF profile: object '" + section +
                               "' is missing");
  const auto& format = document["metadata"].value("format", std::string());
  if (format.empty() || format[0] != '6')
    throw librr::FormatError(source + ": ISF format '" + format +
                             "' is not supported (6.x expected)");
  return Profile(std::move(document), std::move(source));
}

Profile::Profile(json document, std::string source)
    : document_(std::move(document)), source_(std::move(source)) {}

std::string Profile::os() const {
  const json& metadata = document_["metadata"];
  if (metadata.contains(kOwnMetadataKey) && metadata[kOwnMetadataKey].contains("os"))
    return metadata[kOwnMetadataKey]["os"].get<std::string>();
  if (metadata.contains("linux")) return kOsLinux;
  if (document_["symbols"].contains(kTestGuestTaskTable)) return kOsTestGuest;
  return "";
}

std::optional<std::string> Profile::linux_banner() const {
  std::string banner;
  const json& symbols = document_["symbols"];
  const json& metadata = document_["metadata"];
  if (symbols.contains(kLinuxBannerSymbol) &&
      symbols[kLinuxBannerSymbol].contains("constant_data")) {
    const auto bytes = base64_decode(symbols[kLinuxBannerSymbol]["constant_data"]);
    banner.assign(bytes.begin(), bytes.end());
  } else if (metadata.contains(kOwnMetadataKey) &&
             metadata[kOwnMetadataKey].contains("linux_banner")) {
    banner = metadata[kOwnMetadataKey]["linux_banner"];
  } else {
    return std::nullopt;
  }
  if (auto nul = banner.find('\0'); nul != std::string::npos) banner.resize(nul);
  return banner;
}

std::optional<uint64_t> Profile::find_symbol(const std::string& name) const {
  const json& symbols = document_["symbols"];
  auto it = symbols.find(name);
  if (it == symbols.end() || !it->contains("address")) return std::nullopt;
  return (*it)["address"].get<uint64_t>();
}

uint64_t Profile::symbol(const std::string& name) const {
  if (auto address = find_symbol(name)) return *address;
  throw ProfileError("profile " + source_ + " has no symbol '" + name + "'");
}

bool Profile::has_type(const std::string& name) const {
  return document_["user_types"].contains(name) || document_["base_types"].contains(name) ||
         document_["enums"].contains(name);
}

uint64_t Profile::type_size(const std::string& name) const {
  for (const char* table : {"user_types", "base_types", "enums"})
    if (document_[table].contains(name)) return document_[table][name]["size"].get<uint64_t>();
  throw ProfileError("profile " + source_ + " has no type '" + name + "'");
}

uint64_t Profile::descriptor_size(const json& descriptor) const {
  const std::string kind = descriptor.value("kind", "");
  if (kind == "pointer") return type_size("pointer");
  if (kind == "array")
    return descriptor["count"].get<uint64_t>() * descriptor_size(descriptor["subtype"]);
  if (kind == "bitfield") return descriptor_size(descriptor["type"]);
  if (kind == "function") return 0;
  return type_size(descriptor.value("name", ""));
}

std::optional<FieldInfo> Profile::find_member(const std::string& type,
                                              const std::string& name) const {
  const json& types = document_["user_types"];
  auto it = types.find(type);
  if (it == types.end()) return std::nullopt;
  const json& fields = (*it)["fields"];
  if (auto field = fields.find(name); field != fields.end())
    return FieldInfo{(*field)["offset"].get<uint64_t>(), (*field)["type"]};
  // C lets the members of an anonymous struct/union be named directly.
  for (const auto& [member_name, member] : fields.items()) {
    if (!member.value("anonymous", false)) continue;
    const json& member_type = member["type"];
    if (!member_type.contains("name")) continue;
    if (auto inner = find_member(member_type["name"], name)) {
      inner->offset += member["offset"].get<uint64_t>();
      return inner;
    }
  }
  return std::nullopt;
}

std::optional<FieldInfo> Profile::find_field(const std::string& type,
                                             const std::string& path) const {
  FieldInfo result{0, {{"kind", "struct"}, {"name", type}}};
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string name = path.substr(start, dot == std::string::npos ? dot : dot - start);
    const json& current = result.type;
    const std::string kind = current.value("kind", "");
    if (kind != "struct" && kind != "union" && kind != "class") return std::nullopt;
    auto member = find_member(current["name"], name);
    if (!member) return std::nullopt;
    result.offset += member->offset;
    result.type = member->type;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return result;
}

FieldInfo Profile::field(const std::string& type, const std::string& path) const {
  if (auto info = find_field(type, path)) return *info;
  throw ProfileError("profile " + source_ + " has no field '" + path + "' in type '" + type + "'");
}

}  // namespace analyzer
