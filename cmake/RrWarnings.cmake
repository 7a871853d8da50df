# Project-wide warning and sanitizer flags, applied per target with
# rr_target_defaults() so that third-party code is not affected.
function(rr_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wimplicit-fallthrough)
  if(RR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
    # GCC 12 at -O2 reports moving a librr::Event (a std::variant) built from
    # a temporary as "may be used uninitialized" in members of alternatives
    # the variant does not hold, depending on inlining: adding a field to
    # MemoryDelta (log format 2.13) made librr tests that had compiled for
    # months fail so. Reported, not fatal.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized)
    endif()
  endif()
endfunction()

# Sanitizers must cover every object linked into a binary, so they are global.
if(RR_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
