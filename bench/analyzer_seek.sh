#!/bin/sh
# Seek latency of rr-analyze's TimeTraveler on a long recording, with and
# without checkpoints, against replaying from the start (the peer).
#   bench/analyzer_seek.sh BUILD_DIR [GUEST_ARGS...]
# Default recording: the demo guest (3276 landmarks).
set -eu
build=${1:?usage: $0 BUILD_DIR [guest args]}
shift
[ $# -gt 0 ] || set -- --guest demo
work=$(mktemp -d /tmp/rr-analyzer-seek-XXXXXX)
trap 'rm -rf "$work"' EXIT
RR_GUEST_DIR="$build/guests" "$build/bin/rr-vmm" record --out "$work/rec" --serial-in none "$@" \
  >/dev/null
"$build/bin/bench_analyzer_seek" "$work/rec" 20
