#include "sql/query_cache.h"

#include <unistd.h>

#include <cstdlib>

#include "librr/crypto.h"

namespace analyzer::sql {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheFileName = "analysis.sqlite";

fs::path user_cache_directory() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg);
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache";
  return fs::temp_directory_path();
}

// The key the cached database was made with, or "" when it is missing,
// unreadable or not one of ours.
std::string stored_cache_key(const fs::path& path) {
  if (!fs::exists(path)) return "";
  try {
    Database db(path, Database::Mode::kReadOnly);
    Statement statement = db.prepare("SELECT cache_key FROM recording");
    return statement.step() ? std::string(statement.column_text(0)) : "";
  } catch (const SqlError&) {
    return "";
  }
}

}  // namespace

fs::path cache_path_for(const fs::path& recording) {
  if (access(recording.c_str(), W_OK) == 0) return recording / kCacheFileName;
  const std::string absolute = fs::absolute(recording).lexically_normal().string();
  const librr::Digest digest =
      librr::hash256({reinterpret_cast<const uint8_t*>(absolute.data()), absolute.size()});
  const fs::path directory = user_cache_directory() / "rr-analyze";
  fs::create_directories(directory);
  return directory / (librr::to_hex(digest).substr(0, 32) + ".sqlite");
}

CachedExport ensure_cached_export(const fs::path& recording, const ExportOptions& options,
                                  bool force_rebuild) {
  // First: it throws RecordingProblem for a missing recording.
  const std::string key = export_cache_key(recording, options);
  CachedExport cached{cache_path_for(recording), false};
  if (!force_rebuild && stored_cache_key(cached.path) == key) return cached;
  export_recording(recording, cached.path, options);
  cached.rebuilt = true;
  return cached;
}

}  // namespace analyzer::sql
