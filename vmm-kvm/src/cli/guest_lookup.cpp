#include "cli/guest_lookup.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#ifndef RR_INSTALL_PREFIX
#define RR_INSTALL_PREFIX "/usr/local"
#endif

namespace vmm::cli {

std::vector<std::string> guest_search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("RR_GUEST_DIR"); env && *env) dirs.emplace_back(env);
  std::error_code error;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) dirs.push_back((exe.parent_path().parent_path() / "guests").string());
  dirs.push_back(std::string(RR_INSTALL_PREFIX) + "/share/rrkvm/guests");
  return dirs;
}

std::optional<std::string> find_guest(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
  for (const std::string& dir : guest_search_path()) {
    const std::filesystem::path candidate = std::filesystem::path(dir) / (name + ".elf");
    std::error_code error;
    if (std::filesystem::is_regular_file(candidate, error)) return candidate.string();
  }
  return std::nullopt;
}

}  // namespace vmm::cli
