#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#  1. installs what is missing (scripts/setup.sh),
#  2. builds with warnings as errors and runs every ctest test, slow ones included
#     (the real Linux guest is built once and cached outside the checkout),
#  3. builds the libFuzzer targets with clang and runs each briefly.
# Options: --no-fuzz, --no-slow, --sanitize (ASan+UBSan build in build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz=1 slow=1 sanitize=0
for arg in "$@"; do
  case $arg in
    --no-fuzz) fuzz=0 ;;
    --no-slow) slow=0 ;;
    --sanitize) sanitize=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
jobs=$(nproc)
scripts/setup.sh

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
run_ctest() {  # run_ctest BUILD_DIR [ctest args...]; appends "passed failed skipped"
  local dir=$1; shift
  local log; log=$(mktemp)
  set +e
  ctest --test-dir "$dir" --output-on-failure --timeout 1800 -j"$jobs" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local total failed skipped
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  skipped=$(grep -c '\*\*\*Skipped' "$log" || true)
  total=${total:-0} failed=${failed:-0}
  echo "$((total - failed - skipped)) $failed $skipped" >> "$summary"
  rm -f "$log"
  return "$rc"
}

# Compiler cache outside the checkout, shared by clean clones on the same
# machine (paths are made relative to the checkout, so a clone elsewhere hits).
launcher_args=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-${RR_CACHE_DIR:-$HOME/.cache/rrkvm}/ccache}
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
  launcher_args=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

status=0
build=build
cmake_args=(-G Ninja -DRR_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher_args[@]}")
if ((sanitize)); then build=build-asan; cmake_args+=(-DRR_SANITIZE=ON); fi
cmake -S . -B "$build" "${cmake_args[@]}"
cmake --build "$build" -j"$jobs"
label_args=()
((slow)) || label_args=(-LE slow)
run_ctest "$build" "${label_args[@]}" || status=1

if ((fuzz)); then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DRR_FUZZ=ON -DRR_BUILD_TESTS=OFF \
    -DRR_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher_args[@]}"
  cmake --build build-fuzz -j"$jobs" --target fuzzers
  run_ctest build-fuzz -L fuzz || status=1
fi

read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$summary")
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
