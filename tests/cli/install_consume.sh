#!/usr/bin/env bash
# Installs librr into a temporary prefix and builds examples/librr-consumer
# against it twice: through find_package(librr) and through pkg-config.
set -euo pipefail
: "${RR_SOURCE_DIR:?}" "${RR_BINARY_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$RR_BINARY_DIR" --prefix "$prefix" --component Unspecified >/dev/null
test -f "$prefix/lib/cmake/librr/librrConfig.cmake"
test -f "$prefix/lib/pkgconfig/librr.pc"
test -f "$prefix/include/librr/crypto.h"

cmake -S "$RR_SOURCE_DIR/examples/librr-consumer" -B "$tmp/cmake-build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cmake-build" >/dev/null
out=$("$tmp/cmake-build/librr-consumer")
echo "find_package build: $out"
[[ $out == librr\ *digest\ * ]]

# pkg-config: the installed .pc must carry every flag a static link needs.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# shellcheck disable=SC2046
g++ -o "$tmp/pc-consumer" "$RR_SOURCE_DIR/examples/librr-consumer/main.cpp" \
  $(pkg-config --cflags --libs --static librr)
out2=$("$tmp/pc-consumer")
echo "pkg-config build: $out2"
[[ $out == "$out2" ]]
