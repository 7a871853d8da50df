// Minimal third-party use of librr: hash a message and print the library
// version. Built against an installed librr by tests/cli (CMake package and
// pkg-config), so it proves the installed headers and link flags are complete.
#include <cstdio>
#include <string_view>

#include "librr/crypto.h"
#include "librr/version.h"

int main() {
  std::string_view msg = "hello from a librr consumer";
  auto digest = librr::hash256({reinterpret_cast<const unsigned char*>(msg.data()), msg.size()});
  std::printf("librr %s digest %s\n", std::string(librr::library_version()).c_str(),
              librr::to_hex(digest).c_str());
  return 0;
}
