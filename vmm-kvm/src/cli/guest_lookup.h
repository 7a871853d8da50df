#pragma once
// Finding a test guest image by name (the guest/VMM ABI's search order).
#include <optional>
#include <string>
#include <vector>

namespace vmm::cli {

// Directories searched for <name>.elf: $RR_GUEST_DIR, <dir of rr-vmm>/../guests,
// <install prefix>/share/rrkvm/guests.
std::vector<std::string> guest_search_path();
// Full path of <name>.elf in the first directory holding it.
std::optional<std::string> find_guest(const std::string& name);

}  // namespace vmm::cli
