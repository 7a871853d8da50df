#!/usr/bin/env bash
# Slow: records the real Linux guest booting to "Run /init" under rr-vmm and
# replays it; the replay must be faithful (every interrupt, clock sample and
# state digest checked) and print the recorded console output byte for byte.
# Digests every 100 ms of guest time (~1,000 here, ~10 s more per run): a
# divergence that a later memory delta would rewrite is caught where it
# starts (the guest kernel once read the TSC in a window of identify_cpu();
# with the default 10 s interval most such replays still ended faithfully).
# Twice: as recorded by default (nearly every stop searched at replay), and
# with --no-kernel-stop-search (every stop installed with its memory delta),
# where pages filled from the initrd are logged as copies of it (checked
# below; by default the stops in that copy are searched and log no pages).
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

# record_and_replay NAME [RECORD OPTIONS...]
record_and_replay() {
  local name=$1 rec=$tmp/$1
  shift
  local start
  start=$(date +%s)
  "$vmm" record --linux --out "$rec" --serial-in none --digest-interval-ms 100 "$@" \
    >"$rec.record.out" 2>"$rec.record.err" || {
    echo "$name: record failed:"; tail -5 "$rec.record.err"; exit 1; }
  echo "$name: record: $(( $(date +%s) - start )) s; $(tail -1 "$rec.record.err")"
  grep -q "Run /init as init process" "$rec.record.out" || {
    echo "$name: the recorded boot did not reach Run /init:"; tail -20 "$rec.record.out"; exit 1; }
  start=$(date +%s)
  "$vmm" replay "$rec" >"$rec.replay.out" 2>"$rec.replay.err" || {
    echo "$name: replay failed:"; tail -5 "$rec.replay.err"; exit 1; }
  echo "$name: replay: $(( $(date +%s) - start )) s; $(tail -1 "$rec.replay.err")"
  cmp "$rec.record.out" "$rec.replay.out" || {
    echo "$name: replay console output differs"; diff "$rec.record.out" "$rec.replay.out" | head
    exit 1; }
  echo "$name: identical console output ($(wc -c <"$rec.record.out") bytes)"
}

record_and_replay default
# Most stops are found again by a breakpoint search (docs/record-replay.md).
searched=$(sed -n 's/.*(\([0-9]*\) found by breakpoint search.*/\1/p' "$tmp/default.replay.err")
[[ "${searched:-0}" -gt 0 ]] || {
  echo "default: no stop was found by search:"; tail -1 "$tmp/default.replay.err"; exit 1; }

# Where this host emulates kernel code, timer kicks in the kernel's own work
# are put off to the larger bound (docs/record-replay.md, "Interrupts"), and
# stops that no return site took are searched by the recorder itself.
if "$vmm" probe 2>/dev/null | grep -Eq '^ *long64_cpl0 +emulated'; then
  put_off=$(sed -n 's/.* \([0-9]*\) kicks put off in emulated kernel code.*/\1/p' "$tmp/default.record.err")
  [[ "${put_off:-0}" -gt 0 ]] || {
    echo "default: no kick was put off in emulated kernel code:"
    grep stops: "$tmp/default.record.err"; exit 1; }
  echo "default: kicks put off in emulated kernel code: $put_off"
fi
at_record=$(sed -n 's/.* \([0-9]*\) found by a search at record.*/\1/p' "$tmp/default.record.err")
echo "default: stops found by a search at record: ${at_record:-0}"

record_and_replay installed --no-kernel-stop-search
# The kernel unpacks its initramfs into the page cache while timer stops
# interrupt it: some of those pages must be logged as copies of the initrd
# (log format 2.6), and the replay above installed them from guest memory.
copies=$(sed -n 's/.* \([0-9]*\) pages logged as copies.*/\1/p' "$tmp/installed.record.err")
[[ "${copies:-0}" -gt 0 ]] || {
  echo "installed: no page was logged as a copy of the initrd:"
  grep stops: "$tmp/installed.record.err"; exit 1; }
echo "installed: pages logged as copies: $copies"
