#pragma once
// Function and object symbols of an ELF file's symbol table, read with
// libelf, for printing addresses as symbol+offset.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace analyzer {

class SymbolTable {
 public:
  // Throws librr::Error naming the file when it is not a readable ELF file.
  static SymbolTable load(const std::filesystem::path& elf);
  // "name+0x12" (or "name") for an address inside or just after a symbol.
  std::optional<std::string> describe(uint64_t address) const;
  size_t size() const { return symbols_.size(); }

 private:
  struct Symbol {
    uint64_t address;
    uint64_t size;
    std::string name;
  };
  std::vector<Symbol> symbols_;  // sorted by address
};

}  // namespace analyzer
