// The probe result cached as JSON per host identity, so the VMM pays for the
// measurements once per kernel/KVM/CPU combination.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

#include "probe/probe_internal.h"
#include "probe/probe_json.h"

namespace vmm::probe {

namespace fs = std::filesystem;

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && xdg[0] == '/')
    return fs::path(xdg) / "rrkvm";
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] == '\0') {
    const passwd* entry = getpwuid(getuid());
    home = entry ? entry->pw_dir : "/tmp";
  }
  return fs::path(home) / ".cache" / "rrkvm";
}

fs::path cache_file(const fs::path& dir, const std::string& key) {
  // The version is in the name: binaries of different probe versions on one
  // host (several build trees) keep their own file instead of re-probing in turn.
  return dir / ("probe-v" + std::to_string(kProbeVersion) + "-" + key + ".json");
}

namespace {

std::optional<ProbeResult> read_cached(const fs::path& path, const std::string& key) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    ProbeResult cached = nlohmann::json::parse(in).get<ProbeResult>();
    if (cached.probe_version != kProbeVersion || cached.cache_key != key) return std::nullopt;
    return cached;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a damaged cache file is simply measured again
  }
}

// Write-then-rename, so a concurrent reader never sees half a file.
void write_cached(const fs::path& path, const ProbeResult& result) {
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  const fs::path temporary = path.string() + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(temporary, std::ios::trunc);
    if (!out) return;  // an unwritable cache only costs a re-probe next time
    out << nlohmann::json(result).dump(2) << "\n";
    if (!out) return;
  }
  fs::rename(temporary, path, error);
  if (error) fs::remove(temporary, error);
}

// The host does not change under a running process: its identity is read
// once (~0.3 ms of /proc and /sys reads).
const HostInfo& this_host() {
  static const HostInfo host = collect_host_info();
  return host;
}

// The cache file's identity when it was last parsed here, so that a process
// that asks again (`rr-vmm record` asks three times) skips the JSON while the
// file is unchanged.
struct ParsedCacheFile {
  fs::file_time_type modified;
  uintmax_t size = 0;
  ProbeResult result;
};

std::optional<std::pair<fs::file_time_type, uintmax_t>> file_identity(const fs::path& path) {
  std::error_code error;
  const fs::file_time_type modified = fs::last_write_time(path, error);
  if (error) return std::nullopt;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return std::nullopt;
  return std::pair(modified, size);
}

}  // namespace

ProbeResult load_or_run_probe(const ProbeOptions& options) {
  static std::mutex parsed_mutex;
  static std::map<fs::path, ParsedCacheFile> parsed;
  const HostInfo& host = this_host();
  const std::string key = cache_key(host);
  const fs::path path =
      cache_file(options.cache_dir.empty() ? default_cache_dir() : options.cache_dir, key);
  if (!options.refresh) {
    const auto identity = file_identity(path);
    {
      const std::lock_guard lock(parsed_mutex);
      const auto found = parsed.find(path);
      if (identity && found != parsed.end() && found->second.modified == identity->first &&
          found->second.size == identity->second)
        return found->second.result;
    }
    if (std::optional<ProbeResult> cached = read_cached(path, key)) {
      cached->from_cache = true;
      if (identity) {
        const std::lock_guard lock(parsed_mutex);
        parsed.insert_or_assign(path, ParsedCacheFile{identity->first, identity->second, *cached});
      }
      return *cached;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  ProbeResult result = run_probe_for_host(host, options);
  result.total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_cached(path, result);
  return result;
}

}  // namespace vmm::probe
