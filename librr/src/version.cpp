#include "librr/version.h"

namespace librr {
std::string_view library_version() { return LIBRR_VERSION; }
}  // namespace librr
