#pragma once
// Where `rr-analyze query` keeps its export of a recording, and when to
// remake it. The cache is REC/analysis.sqlite, or, when the recording's
// directory is not writable, $XDG_CACHE_HOME/rr-analyze/<hash of REC's
// path>.sqlite (~/.cache when XDG_CACHE_HOME is unset). It is remade when
// its recording.cache_key differs from the recording's (export_cache_key).
#include <filesystem>

#include "sql/exporter.h"

namespace analyzer::sql {

struct CachedExport {
  std::filesystem::path path;
  bool rebuilt = false;
};

CachedExport ensure_cached_export(const std::filesystem::path& recording,
                                  const ExportOptions& options, bool force_rebuild);

std::filesystem::path cache_path_for(const std::filesystem::path& recording);

}  // namespace analyzer::sql
