#!/usr/bin/env bash
# Slow: records the real Linux guest booting to "Run /init" under rr-vmm and
# replays it; the replay must be faithful (every interrupt, clock sample and
# state digest checked) and print the recorded console output byte for byte.
# Digests every 100 ms of guest time (~1,000 here, ~10 s more per run): a
# divergence that a later memory delta would rewrite is caught where it
# starts (the guest kernel once read the TSC in a window of identify_cpu();
# with the default 10 s interval most such replays still ended faithfully).
# Pages filled from the initrd are logged as copies of it (checked below).
# The guest kernel is built once and cached (examples/linux-guest/build.sh).
set -euo pipefail
: "${RR_SOURCE_DIR:?}" "${RR_BINARY_DIR:?}"
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  echo "SKIP: /dev/kvm is not usable here" >&2
  exit 77
fi
RR_LINUX_GUEST_DIR=$("$RR_SOURCE_DIR/examples/linux-guest/build.sh" --print-dir)
export RR_LINUX_GUEST_DIR
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vmm=$RR_BINARY_DIR/bin/rr-vmm

start=$(date +%s)
"$vmm" record --linux --out "$tmp/rec" --serial-in none --digest-interval-ms 100 \
  >"$tmp/record.out" 2>"$tmp/record.err" || {
  echo "record failed:"; tail -5 "$tmp/record.err"; exit 1; }
echo "record: $(( $(date +%s) - start )) s; $(tail -1 "$tmp/record.err")"
grep -q "Run /init as init process" "$tmp/record.out" || {
  echo "the recorded boot did not reach Run /init:"; tail -20 "$tmp/record.out"; exit 1; }
# The kernel unpacks its initramfs into the page cache while timer stops
# interrupt it: some of those pages must be logged as copies of the initrd
# (log format 2.6), and the replay below installs them from guest memory.
copies=$(sed -n 's/.* \([0-9]*\) pages logged as copies.*/\1/p' "$tmp/record.err")
[[ "${copies:-0}" -gt 0 ]] || {
  echo "no page was logged as a copy of the initrd:"; grep stops: "$tmp/record.err"; exit 1; }
echo "pages logged as copies: $copies"

start=$(date +%s)
"$vmm" replay "$tmp/rec" >"$tmp/replay.out" 2>"$tmp/replay.err" || {
  echo "replay failed:"; tail -5 "$tmp/replay.err"; exit 1; }
echo "replay: $(( $(date +%s) - start )) s; $(tail -1 "$tmp/replay.err")"
cmp "$tmp/record.out" "$tmp/replay.out" || {
  echo "replay console output differs"; diff "$tmp/record.out" "$tmp/replay.out" | head; exit 1; }
echo "identical console output ($(wc -c <"$tmp/record.out") bytes)"
