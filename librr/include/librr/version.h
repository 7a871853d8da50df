#pragma once
#include <string_view>

namespace librr {
// Version of the librr library (semantic versioning).
std::string_view library_version();
}  // namespace librr
