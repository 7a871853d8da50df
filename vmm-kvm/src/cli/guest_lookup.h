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

// The replay-friendly Linux guest (examples/linux-guest): its directory with
// vmlinux, initramfs.cpio and cmdline.txt. $RR_LINUX_GUEST_DIR if set, else
// the cache directory of the current inputs, built first if missing (~7 min,
// progress on stderr). Throws librr::Error when it cannot be had.
std::string linux_guest_dir();

}  // namespace vmm::cli
