#pragma once
// Builds a Volatility 3 Intermediate Symbol Format (ISF, schema 6.2.0) profile
// from a kernel ELF with DWARF, the way dwarf2json does: base_types,
// user_types (structs and unions with field offsets), enums, symbols (DWARF
// variables with their types, plus every ELF symbol's address), and for Linux
// the bytes of linux_banner (symbols.linux_banner.constant_data, base64, which
// is what Volatility matches against memory). schemas/profile-format.md.
#include <filesystem>
#include <nlohmann/json.hpp>

namespace analyzer {

struct IsfGenerationStats {
  size_t compile_units = 0;
  size_t user_types = 0;
  size_t base_types = 0;
  size_t enums = 0;
  size_t symbols = 0;
};

// Throws librr::Error naming the file if it is not an ELF64 file with DWARF.
nlohmann::json generate_isf(const std::filesystem::path& elf_path,
                            IsfGenerationStats* stats = nullptr);

}  // namespace analyzer
