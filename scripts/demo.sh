#!/usr/bin/env bash
# The main job on its built-in default: record the built-in demo guest with
# rr-vmm, verify the recording with rr-analyze, replay it and check that the
# replay printed exactly what the recorded run printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RR_BIN:-build/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/rr-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT
rec=$work/demo.rec

echo "== rr-vmm record: the demo guest (serial output below)"
"$bin/rr-vmm" record --out "$rec" --serial-in none | tee "$work/record.out"
echo
echo "== rr-analyze info"
"$bin/rr-analyze" info "$rec"
echo
echo "== rr-analyze verify"
"$bin/rr-analyze" verify "$rec"
echo
echo "== rr-vmm replay"
"$bin/rr-vmm" replay "$rec" > "$work/replay.out"
if cmp -s "$work/record.out" "$work/replay.out"; then
  echo "replay output identical to the recorded run ($(wc -c < "$work/replay.out") bytes)"
else
  echo "replay output DIFFERS from the recorded run" >&2
  diff "$work/record.out" "$work/replay.out" | head -20 >&2
  exit 1
fi
