#include "profile/elf_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstring>

#include "librr/error.h"

namespace analyzer {

ElfFile::ElfFile(const std::filesystem::path& path) : path_(path) {
  if (elf_version(EV_CURRENT) == EV_NONE)
    throw librr::Error(std::string("libelf: ") + elf_errmsg(-1));
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) librr::throw_errno("cannot open ELF file " + path.string());
  elf_ = elf_begin(fd_, ELF_C_READ_MMAP, nullptr);
  if (elf_ == nullptr || elf_kind(elf_) != ELF_K_ELF || gelf_getclass(elf_) != ELFCLASS64) {
    const std::string reason = elf_ == nullptr ? elf_errmsg(-1) : "not an ELF64 file";
    if (elf_ != nullptr) elf_end(elf_);
    ::close(fd_);
    throw librr::Error(path.string() + ": " + reason);
  }
}

ElfFile::~ElfFile() {
  elf_end(elf_);
  ::close(fd_);
}

std::vector<ElfSymbol> ElfFile::symbols() const {
  std::vector<ElfSymbol> result;
  Elf_Scn* section = nullptr;
  while ((section = elf_nextscn(elf_, section)) != nullptr) {
    GElf_Shdr header;
    if (gelf_getshdr(section, &header) == nullptr || header.sh_type != SHT_SYMTAB) continue;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (data == nullptr || header.sh_entsize == 0) continue;
    const size_t count = header.sh_size / header.sh_entsize;
    result.reserve(count);
    for (size_t i = 1; i < count; ++i) {
      GElf_Sym symbol;
      if (gelf_getsym(data, static_cast<int>(i), &symbol) == nullptr) continue;
      const int type = GELF_ST_TYPE(symbol.st_info);
      if (type == STT_SECTION || type == STT_FILE) continue;
      const char* name = elf_strptr(elf_, header.sh_link, symbol.st_name);
      if (name == nullptr || *name == '\0') continue;
      result.push_back({name, symbol.st_value, symbol.st_size, type == STT_FUNC});
    }
  }
  return result;
}

std::optional<ElfSymbol> ElfFile::find_symbol(const std::string& name) const {
  for (auto& symbol : symbols())
    if (symbol.name == name) return symbol;
  return std::nullopt;
}

std::optional<std::vector<uint8_t>> ElfFile::read_at(uint64_t address, uint64_t size) const {
  Elf_Scn* section = nullptr;
  while ((section = elf_nextscn(elf_, section)) != nullptr) {
    GElf_Shdr header;
    if (gelf_getshdr(section, &header) == nullptr) continue;
    if (header.sh_type != SHT_PROGBITS || (header.sh_flags & SHF_ALLOC) == 0) continue;
    if (address < header.sh_addr || address - header.sh_addr > header.sh_size ||
        size > header.sh_size - (address - header.sh_addr))
      continue;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (data == nullptr || data->d_buf == nullptr || data->d_size < header.sh_size)
      return std::nullopt;
    const auto* begin = static_cast<const uint8_t*>(data->d_buf) + (address - header.sh_addr);
    return std::vector<uint8_t>(begin, begin + size);
  }
  return std::nullopt;
}

}  // namespace analyzer
