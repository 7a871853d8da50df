#!/bin/sh
# Seek latency of rr-analyze's TimeTraveler on a recording, with and without
# checkpoints, against replaying from the start (the peer).
#   bench/analyzer_seek.sh BUILD_DIR [GUEST_ARGS...]
#       default recording: the demo guest (3276 landmarks)
#   bench/analyzer_seek.sh BUILD_DIR --long [SECONDS]
#       a long recording: the ticks guest (timer interrupts at CPL3, in
#       kernel spins and in the idle loop, forever) recorded for SECONDS
#       (600) of wall time and stopped with SIGINT, then 20 random seeks.
#       Takes SECONDS plus a few full replays of the result.
set -eu
build=${1:?usage: $0 BUILD_DIR [guest args] | BUILD_DIR --long [SECONDS]}
shift
work=$(mktemp -d /tmp/rr-analyzer-seek-XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ "${1:-}" = "--long" ]; then
  seconds=${2:-600}
  echo "recording the ticks guest for $seconds s ..." >&2
  # ticks=N: each phase lasts N timer ticks, far longer than the recording.
  status=0
  RR_GUEST_DIR="$build/guests" timeout -s INT "$seconds" "$build/bin/rr-vmm" record \
    --out "$work/rec" --serial-in none --guest ticks --append ticks=100000000 \
    >/dev/null || status=$?
  # timeout's 124: the recording was stopped by the signal, as intended.
  [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || exit "$status"
  du -sh "$work/rec" >&2
else
  [ $# -gt 0 ] || set -- --guest demo
  RR_GUEST_DIR="$build/guests" "$build/bin/rr-vmm" record --out "$work/rec" --serial-in none "$@" \
    >/dev/null
fi
"$build/bin/bench_analyzer_seek" "$work/rec" 20
