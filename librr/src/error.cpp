#include "librr/error.h"

#include <cerrno>
#include <cstring>

namespace librr {
void throw_errno(const std::string& context) {
  throw SystemError(context + ": " + std::strerror(errno));
}
}  // namespace librr
