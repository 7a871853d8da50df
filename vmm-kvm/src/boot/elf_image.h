#pragma once
// A validated ELF64 x86-64 executable held in memory: its loadable segments,
// entry point and, if present, the PVH entry from the Xen ELF note.
// Every offset and size is checked against the file before use.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guest_memory.h"

namespace vmm::boot {

struct ElfSegment {
  uint64_t file_offset;
  uint64_t file_size;
  uint64_t physical_address;
  uint64_t virtual_address;
  uint64_t memory_size;
};

class ElfImage {
 public:
  static bool looks_like_elf(std::span<const uint8_t> file);
  // Throws librr::FormatError naming `path` and the offending offset.
  ElfImage(std::span<const uint8_t> file, std::string path);

  const std::vector<ElfSegment>& segments() const { return segments_; }
  uint64_t entry() const { return entry_; }
  // Physical address of e_entry (translated through the segment holding it).
  uint64_t physical_entry() const;
  // XEN_ELFNOTE_PHYS32_ENTRY, when the image carries it.
  std::optional<uint32_t> pvh_entry() const { return pvh_entry_; }
  // One past the highest physical byte any segment occupies.
  uint64_t physical_end() const;

  // Copies every PT_LOAD segment to its physical address and zeroes the BSS
  // tail; throws if a segment does not fit in guest RAM.
  void load(const GuestMemory& memory) const;

 private:
  void find_pvh_note_in(uint64_t offset, uint64_t size);

  std::span<const uint8_t> file_;
  std::string path_;
  std::vector<ElfSegment> segments_;
  uint64_t entry_ = 0;
  std::optional<uint32_t> pvh_entry_;
};

}  // namespace vmm::boot
