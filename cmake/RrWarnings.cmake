# Project-wide warning and sanitizer flags, applied per target with
# rr_target_defaults() so that third-party code is not affected.
function(rr_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Wimplicit-fallthrough)
  if(RR_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Sanitizers must cover every object linked into a binary, so they are global.
if(RR_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
