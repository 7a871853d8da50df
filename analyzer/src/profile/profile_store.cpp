#include "profile/profile_store.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "librr/crypto.h"
#include "librr/error.h"
#include "profile/isf_generator.h"

namespace analyzer {
namespace {

std::vector<uint8_t> read_whole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw librr::Error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

void write_profile(const nlohmann::json& isf, const std::filesystem::path& path) {
  const std::filesystem::path temporary =
      path.string() + fmt::format(".tmp{}", static_cast<long>(::getpid()));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw librr::Error("cannot write " + temporary.string());
    out << isf.dump(1) << '\n';
    if (!out.flush()) throw librr::Error("write failed: " + temporary.string());
  }
  std::filesystem::rename(temporary, path);
}

std::filesystem::path profile_cache_dir() {
  if (const char* dir = std::getenv("RR_CACHE_DIR"); dir != nullptr && *dir != '\0')
    return std::filesystem::path(dir) / "profiles";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr ? home : "/tmp") / ".cache/rrkvm/profiles";
}

Profile profile_for_recording(const librr::Manifest& manifest, const std::string& explicit_path) {
  if (!explicit_path.empty()) return Profile::load(explicit_path);
  const auto kernel = manifest.guest.find("kernel");
  const auto digest = manifest.guest.find("kernel_digest");
  if (kernel == manifest.guest.end() || digest == manifest.guest.end())
    throw librr::Error(
        "the recording's manifest names no guest kernel; pass --profile FILE (rr-analyze profile "
        "generate --elf KERNEL --out FILE)");
  const std::filesystem::path cached = profile_cache_dir() / (digest->second + ".json");
  if (std::filesystem::exists(cached)) return Profile::load(cached);
  const std::filesystem::path elf = kernel->second;
  if (!std::filesystem::exists(elf))
    throw librr::Error("the recording's kernel " + elf.string() +
                       " no longer exists, so no profile can be generated; pass --profile FILE");
  if (librr::to_hex(librr::hash256(read_whole(elf))) != digest->second)
    throw librr::Error("the kernel " + elf.string() +
                       " has changed since the recording was made (digest differs from the "
                       "manifest's kernel_digest); pass --profile FILE made from the original");
  std::filesystem::create_directories(cached.parent_path());
  fmt::print(stderr, "rr-analyze: generating the profile of {} (cached as {})\n", elf.string(),
             cached.string());
  write_profile(generate_isf(elf), cached);
  return Profile::load(cached);
}

}  // namespace analyzer
