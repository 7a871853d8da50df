#include "profile/isf_generator.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <sodium.h>

#include <array>
#include <fstream>
#include <memory>

#include "librr/error.h"
#include "librr/version.h"
#include "profile/dwarf_types.h"
#include "profile/elf_file.h"
#include "profile/isf_format.h"

namespace analyzer {
namespace {

using nlohmann::json;

struct DwarfCloser {
  void operator()(Dwarf* dwarf) const { dwarf_end(dwarf); }
};

// Address of a variable whose location is the single operation DW_OP_addr.
std::optional<uint64_t> static_address(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  if (dwarf_attr(die, DW_AT_location, &attr) == nullptr) return std::nullopt;
  Dwarf_Op* ops = nullptr;
  size_t count = 0;
  if (dwarf_getlocation(&attr, &ops, &count) != 0 || count != 1 || ops[0].atom != DW_OP_addr)
    return std::nullopt;
  return ops[0].number;
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw librr::Error("cannot read " + path.string());
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(buffer.data()),
                              static_cast<unsigned long long>(in.gcount()));
  }
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256_final(&state, digest.data());
  std::string hex(digest.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), digest.data(), digest.size());
  hex.pop_back();
  return hex;
}

class Generator {
 public:
  explicit Generator(const ElfFile& elf) : elf_(elf) {}

  void walk_dwarf() {
    std::unique_ptr<Dwarf, DwarfCloser> dwarf(
        dwarf_begin_elf(elf_.handle(), DWARF_C_READ, nullptr));
    if (!dwarf)
      throw librr::Error(elf_.path().string() + ": no DWARF debug information (" +
                         dwarf_errmsg(-1) + "); build it with -g");
    Dwarf_Off offset = 0;
    Dwarf_Off next = 0;
    size_t header_size = 0;
    while (dwarf_nextcu(dwarf.get(), offset, &next, &header_size, nullptr, nullptr, nullptr) == 0) {
      Dwarf_Die unit;
      if (dwarf_offdie(dwarf.get(), offset + header_size, &unit) != nullptr) {
        ++units_;
        walk_unit(&unit);
      }
      offset = next;
    }
    if (units_ == 0) throw librr::Error(elf_.path().string() + ": DWARF has no compilation units");
  }

  void add_elf_symbols() {
    for (const ElfSymbol& symbol : elf_.symbols()) {
      json& entry = symbols_[symbol.name];
      if (!entry.contains("address") || entry["address"].get<uint64_t>() == 0)
        entry["address"] = symbol.address;
      if (symbol.is_function && !entry.contains("type")) entry["type"] = {{"kind", "function"}};
    }
  }

  // Volatility identifies a Linux profile by the bytes of linux_banner.
  std::optional<std::string> add_banner() {
    const auto banner = elf_.find_symbol(kLinuxBannerSymbol);
    if (!banner || banner->size == 0) return std::nullopt;
    const auto bytes = elf_.read_at(banner->address, banner->size);
    if (!bytes) return std::nullopt;
    symbols_[kLinuxBannerSymbol]["constant_data"] = base64_encode(*bytes);
    std::string text(bytes->begin(), bytes->end());
    if (auto nul = text.find('\0'); nul != std::string::npos) text.resize(nul);
    return text;
  }

  json finish(const std::optional<std::string>& banner, IsfGenerationStats* stats) {
    types_.base_types()["void"] = {
        {"size", 0}, {"signed", false}, {"kind", "void"}, {"endian", "little"}};
    for (auto& [name, definition] : types_.enums().items()) {
      const std::string base = definition["base"];
      if (!types_.base_types().contains(base))
        types_.base_types()[base] = {{"size", definition["size"]},
                                     {"signed", base.find("unsigned") == std::string::npos},
                                     {"kind", "int"},
                                     {"endian", "little"}};
    }
    json metadata = {
        {"format", kIsfFormatVersion},
        {"producer", {{"name", "rr-analyze"}, {"version", std::string(librr::library_version())}}},
    };
    const json source = {{"kind", "dwarf"},
                         {"name", elf_.path().filename().string()},
                         {"hash_type", "sha256"},
                         {"hash_value", sha256_file(elf_.path())}};
    json own = {{"os", banner
                           ? kOsLinux
                           : (symbols_.contains(kTestGuestTaskTable) ? kOsTestGuest : "unknown")}};
    if (banner) {
      metadata["linux"] = {{"symbols", json::array({source})}, {"types", json::array({source})}};
      own["linux_banner"] = *banner;
    } else {
      own["source"] = source;
    }
    metadata[kOwnMetadataKey] = own;
    if (stats != nullptr) {
      stats->compile_units = units_;
      stats->user_types = types_.user_types().size();
      stats->base_types = types_.base_types().size();
      stats->enums = types_.enums().size();
      stats->symbols = symbols_.size();
    }
    return {{"metadata", metadata},
            {"base_types", std::move(types_.base_types())},
            {"user_types", std::move(types_.user_types())},
            {"enums", std::move(types_.enums())},
            {"symbols", std::move(symbols_)}};
  }

 private:
  void walk_unit(Dwarf_Die* unit) {
    Dwarf_Die child;
    if (dwarf_child(unit, &child) != 0) return;
    do {
      if (dwarf_tag(&child) == DW_TAG_variable)
        add_variable(&child);
      else
        types_.define(&child);
    } while (dwarf_siblingof(&child, &child) == 0);
  }

  void add_variable(Dwarf_Die* die) {
    const char* name = dwarf_diename(die);
    if (name == nullptr) {
      // A definition that refers to its declaration for the name and type.
      Dwarf_Attribute attr;
      Dwarf_Die declaration;
      if (dwarf_attr(die, DW_AT_specification, &attr) == nullptr ||
          dwarf_formref_die(&attr, &declaration) == nullptr)
        return;
      name = dwarf_diename(&declaration);
      if (name == nullptr) return;
    }
    const auto address = static_address(die);
    json& entry = symbols_[name];
    if (address) entry["address"] = *address;
    if (!entry.contains("address")) entry["address"] = 0;
    if (!entry.contains("type") || address) entry["type"] = types_.describe_type_of(die);
  }

  const ElfFile& elf_;
  DwarfTypeBuilder types_;
  json symbols_ = json::object();
  size_t units_ = 0;
};

}  // namespace

nlohmann::json generate_isf(const std::filesystem::path& elf_path, IsfGenerationStats* stats) {
  if (sodium_init() < 0) throw librr::Error("libsodium failed to initialise");
  const ElfFile elf(elf_path);
  Generator generator(elf);
  generator.walk_dwarf();
  generator.add_elf_symbols();
  const auto banner = generator.add_banner();
  return generator.finish(banner, stats);
}

}  // namespace analyzer
