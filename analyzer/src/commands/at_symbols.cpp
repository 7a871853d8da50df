#include "commands/at_symbols.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>

#include "librr/error.h"

namespace analyzer {
namespace {

struct ElfFile {
  int fd = -1;
  Elf* elf = nullptr;
  ~ElfFile() {
    if (elf) elf_end(elf);
    if (fd >= 0) close(fd);
  }
};

}  // namespace

SymbolTable SymbolTable::load(const std::filesystem::path& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) throw librr::Error("libelf is unusable");
  ElfFile file;
  file.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) librr::throw_errno("opening " + path.string());
  file.elf = elf_begin(file.fd, ELF_C_READ, nullptr);
  if (!file.elf || elf_kind(file.elf) != ELF_K_ELF)
    throw librr::Error(path.string() + " is not an ELF file");
  SymbolTable table;
  Elf_Scn* section = nullptr;
  while ((section = elf_nextscn(file.elf, section)) != nullptr) {
    GElf_Shdr header;
    if (!gelf_getshdr(section, &header) || header.sh_type != SHT_SYMTAB) continue;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (!data || header.sh_entsize == 0) continue;
    const size_t count = header.sh_size / header.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym symbol;
      if (!gelf_getsym(data, static_cast<int>(i), &symbol)) continue;
      const int type = GELF_ST_TYPE(symbol.st_info);
      if ((type != STT_FUNC && type != STT_OBJECT && type != STT_NOTYPE) || symbol.st_value == 0 ||
          symbol.st_shndx == SHN_UNDEF)
        continue;
      const char* name = elf_strptr(file.elf, header.sh_link, symbol.st_name);
      if (!name || !*name) continue;
      table.symbols_.push_back({symbol.st_value, symbol.st_size, name});
    }
  }
  if (table.symbols_.empty()) throw librr::Error(path.string() + " has no symbol table");
  std::sort(table.symbols_.begin(), table.symbols_.end(),
            [](const Symbol& a, const Symbol& b) { return a.address < b.address; });
  return table;
}

std::optional<std::string> SymbolTable::describe(uint64_t address) const {
  auto after = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                                [](uint64_t a, const Symbol& s) { return a < s.address; });
  if (after == symbols_.begin()) return std::nullopt;
  // Among symbols at the same address, prefer one with a size (a function).
  const Symbol* best = &*std::prev(after);
  for (auto it = std::prev(after); it->address == best->address; --it) {
    if (it->size > 0) best = &*it;
    if (it == symbols_.begin()) break;
  }
  const uint64_t offset = address - best->address;
  if (best->size > 0 && offset >= best->size) return std::nullopt;
  if (offset == 0) return best->name;
  return best->name + "+0x" + [&] {
    char hex[20];
    std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(offset));
    return std::string(hex);
  }();
}

}  // namespace analyzer
