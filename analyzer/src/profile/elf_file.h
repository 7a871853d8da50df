#pragma once
// An ELF file opened read-only with elfutils' libelf: its symbol table and
// the bytes of allocated sections. The profile generator uses it for symbol
// addresses DWARF does not give (assembly symbols such as init_top_pgt) and
// for the contents of linux_banner in .rodata.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

typedef struct Elf Elf;

namespace analyzer {

struct ElfSymbol {
  std::string name;
  uint64_t address = 0;
  uint64_t size = 0;
  bool is_function = false;
};

class ElfFile {
 public:
  // Throws librr::Error naming the file if it cannot be opened or is not ELF64.
  explicit ElfFile(const std::filesystem::path& path);
  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  Elf* handle() const { return elf_; }
  int fd() const { return fd_; }

  // Named symbols of .symtab (sections and files excluded), in table order.
  std::vector<ElfSymbol> symbols() const;
  std::optional<ElfSymbol> find_symbol(const std::string& name) const;
  // Bytes at [address, address + size) of the allocated section holding them
  // with file contents (PROGBITS); nullopt if no section does.
  std::optional<std::vector<uint8_t>> read_at(uint64_t address, uint64_t size) const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  Elf* elf_ = nullptr;
};

}  // namespace analyzer
