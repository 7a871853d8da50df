#include "boot/elf_image.h"

#include <elf.h>
#include <fmt/format.h>

#include <cstring>

#include "librr/error.h"

namespace vmm::boot {
namespace {
constexpr uint32_t kXenElfNotePhys32Entry = 18;

template <class T>
T read_struct(std::span<const uint8_t> file, uint64_t offset, const std::string& path,
              const char* what) {
  if (offset > file.size() || sizeof(T) > file.size() - offset)
    throw librr::FormatError(
        fmt::format("{}: {} at offset {:#x} lies past the end of the file ({} bytes)", path, what,
                    offset, file.size()),
        static_cast<int64_t>(offset));
  T value;
  std::memcpy(&value, file.data() + offset, sizeof value);
  return value;
}
}  // namespace

bool ElfImage::looks_like_elf(std::span<const uint8_t> file) {
  return file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0;
}

ElfImage::ElfImage(std::span<const uint8_t> file, std::string path)
    : file_(file), path_(std::move(path)) {
  const auto header = read_struct<Elf64_Ehdr>(file, 0, path_, "ELF header");
  if (!looks_like_elf(file) || header.e_ident[EI_CLASS] != ELFCLASS64 ||
      header.e_ident[EI_DATA] != ELFDATA2LSB)
    throw librr::FormatError(path_ + ": not a little-endian ELF64 file", 0);
  if (header.e_machine != EM_X86_64)
    throw librr::FormatError(
        fmt::format("{}: ELF machine {} is not x86-64 ({})", path_, header.e_machine, EM_X86_64),
        18);
  if (header.e_type != ET_EXEC)
    throw librr::FormatError(
        path_ + ": not an executable ELF (e_type " + std::to_string(header.e_type) + ")", 16);
  if (header.e_phentsize != sizeof(Elf64_Phdr))
    throw librr::FormatError(path_ + ": unexpected program header size", 54);
  entry_ = header.e_entry;

  for (uint16_t i = 0; i < header.e_phnum; ++i) {
    const uint64_t at = header.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr);
    const auto ph = read_struct<Elf64_Phdr>(file, at, path_, "program header");
    if (ph.p_type == PT_LOAD) {
      if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset)
        throw librr::FormatError(
            fmt::format("{}: segment {} (offset {:#x}, {} bytes) lies past the end of the file",
                        path_, i, ph.p_offset, ph.p_filesz),
            static_cast<int64_t>(at));
      if (ph.p_filesz > ph.p_memsz)
        throw librr::FormatError(
            fmt::format("{}: segment {} has file size above memory size", path_, i),
            static_cast<int64_t>(at));
      segments_.push_back({ph.p_offset, ph.p_filesz, ph.p_paddr, ph.p_vaddr, ph.p_memsz});
    } else if (ph.p_type == PT_NOTE && !pvh_entry_) {
      find_pvh_note_in(ph.p_offset, ph.p_filesz);
    }
  }
  if (segments_.empty()) throw librr::FormatError(path_ + ": no loadable segment", 0);

  // Some linkers keep the note only as a section, without a PT_NOTE segment.
  if (!pvh_entry_ && header.e_shentsize == sizeof(Elf64_Shdr)) {
    for (uint16_t i = 0; i < header.e_shnum; ++i) {
      const uint64_t at = header.e_shoff + uint64_t{i} * sizeof(Elf64_Shdr);
      const auto sh = read_struct<Elf64_Shdr>(file, at, path_, "section header");
      if (sh.sh_type == SHT_NOTE) find_pvh_note_in(sh.sh_offset, sh.sh_size);
      if (pvh_entry_) break;
    }
  }
}

void ElfImage::find_pvh_note_in(uint64_t offset, uint64_t size) {
  if (offset > file_.size() || size > file_.size() - offset) return;
  const uint64_t end = offset + size;
  auto align4 = [](uint64_t v) { return (v + 3) & ~uint64_t{3}; };
  while (offset + sizeof(Elf64_Nhdr) <= end) {
    const auto note = read_struct<Elf64_Nhdr>(file_, offset, path_, "ELF note");
    const uint64_t name_at = offset + sizeof(Elf64_Nhdr);
    const uint64_t desc_at = name_at + align4(note.n_namesz);
    const uint64_t next = desc_at + align4(note.n_descsz);
    if (next > end || next <= offset) return;  // malformed: stop scanning
    const bool is_xen = note.n_namesz == 4 && std::memcmp(file_.data() + name_at, "Xen", 4) == 0;
    if (is_xen && note.n_type == kXenElfNotePhys32Entry && note.n_descsz >= 4) {
      // The descriptor is 4 bytes (or 8 on some kernels); the entry is 32-bit either way.
      pvh_entry_ = read_struct<uint32_t>(file_, desc_at, path_, "PVH entry");
      return;
    }
    offset = next;
  }
}

uint64_t ElfImage::physical_entry() const {
  for (const ElfSegment& s : segments_)
    if (entry_ >= s.virtual_address && entry_ - s.virtual_address < s.memory_size)
      return s.physical_address + (entry_ - s.virtual_address);
  throw librr::FormatError(fmt::format("{}: entry point {:#x} is in no segment", path_, entry_),
                           24);
}

uint64_t ElfImage::physical_end() const {
  uint64_t end = 0;
  for (const ElfSegment& s : segments_) end = std::max(end, s.physical_address + s.memory_size);
  return end;
}

void ElfImage::load(const GuestMemory& memory) const {
  for (const ElfSegment& s : segments_) {
    uint8_t* target = memory.translate(s.physical_address, s.memory_size);
    if (!target)
      throw librr::Error(fmt::format(
          "{}: segment at physical {:#x} ({} bytes) does not fit in {} MiB of guest RAM", path_,
          s.physical_address, s.memory_size, memory.size() >> 20));
    std::memcpy(target, file_.data() + s.file_offset, s.file_size);
    std::memset(target + s.file_size, 0, s.memory_size - s.file_size);
  }
}

}  // namespace vmm::boot
