#pragma once
// Where profiles come from for a recording: the file the user names, or one
// generated from the kernel ELF the recording's manifest names and cached
// under ${RR_CACHE_DIR:-~/.cache/rrkvm}/profiles/<kernel digest>.json.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "librr/manifest.h"
#include "profile/profile.h"

namespace analyzer {

// Writes atomically (temporary file + rename), so a reader never sees half a profile.
void write_profile(const nlohmann::json& isf, const std::filesystem::path& path);

std::filesystem::path profile_cache_dir();

// explicit_path non-empty: loads it. Otherwise the cached profile of the
// manifest's guest kernel, generating it first if needed (the ELF must still
// exist and hash to the manifest's kernel_digest). Throws librr::Error saying
// what to do when no profile can be had.
Profile profile_for_recording(const librr::Manifest& manifest, const std::string& explicit_path);

}  // namespace analyzer
