#include "cli/guest_lookup.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "librr/error.h"

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

namespace vmm::cli {

std::string linux_guest_dir() {
  if (const char* dir = std::getenv("RR_LINUX_GUEST_DIR"); dir && *dir) return dir;
  const std::string script = RR_LINUX_GUEST_BUILD;
  if (access(script.c_str(), X_OK) != 0)
    throw librr::Error("--linux: " + script +
                       " is missing; set RR_LINUX_GUEST_DIR to a directory with vmlinux, "
                       "initramfs.cpio and cmdline.txt");
  // Progress goes to our stderr; the script prints only the directory on stdout.
  FILE* pipe = popen((script + " --print-dir").c_str(), "r");
  if (!pipe) librr::throw_errno("--linux: cannot run " + script);
  std::string dir;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe)) dir += buffer;
  const int status = pclose(pipe);
  while (!dir.empty() && (dir.back() == '\n' || dir.back() == '\r')) dir.pop_back();
  if (status != 0 || dir.empty())
    throw librr::Error("--linux: building the Linux guest failed (" + script + ")");
  return dir;
}

}  // namespace vmm::cli
