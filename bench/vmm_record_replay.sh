#!/bin/sh
# Record and replay cost of each test guest under rr-vmm, with QEMU TCG record/replay
# (-icount shift=auto,rr=record|replay) of the same PVH ELF measured in the same run.
# Table 1: plain run vs record vs replay time, log bytes (total, per asynchronous position,
#   per second of recording), and QEMU's log and times for the same guest. The record
#   overhead is the median (and quartiles) of each round's record against that round's run.
# Table 2: an idle guest (serial-echo blocked on an empty FIFO, 100 Hz timer): log bytes per
#   second from the difference of a short and a long idle stretch, extrapolated to a day.
# Prints tables; asserts nothing about speed. Exit 1 only if a run fails or a replay's
# output differs from its recording's.
# usage: bench/vmm_record_replay.sh [BUILD_DIR]
#   env: RUNS=3, GUESTS="hello ticks spin3 demo", IDLE_SHORT=2, IDLE_LONG=12 (seconds),
#        BASELINE=DIR: also measure the rr-vmm in DIR (bin/rr-vmm, guests/),
#        e.g. a copy of an older build, in the same loop: rows "GUEST (baseline)".
#        LINUX=1: table 3, the real Linux guest (examples/linux-guest, its cached build or
#        $RR_LINUX_GUEST_DIR) booted to "Run /init" under rr-vmm and QEMU rr=record/replay,
#        once each (several minutes: the kernel runs emulated at ~1M instr/s here).
set -u
[ $# -ge 1 ] && BUILD=$(cd "$1" && pwd)
: "${RUNS:=3}"
. "$(dirname "$0")/vmm_lib.sh"
: "${GUESTS:=hello ticks spin3 demo}"
: "${IDLE_SHORT:=2}"
: "${IDLE_LONG:=12}"
: "${BASELINE:=}"
: "${LINUX:=0}"
check_tools
[ -f "$RR_GUEST_DIR/serial-echo.elf" ] || die "$RR_GUEST_DIR/serial-echo.elf missing"
if [ -n "$BASELINE" ]; then
  BASELINE=$(cd "$BASELINE" && pwd)
  [ -x "$BASELINE/bin/rr-vmm" ] || die "$BASELINE/bin/rr-vmm missing"
fi
# Recorders to measure: "label vmm guest_dir" per line.
recorders() {
  [ -z "$BASELINE" ] || echo "baseline $BASELINE/bin/rr-vmm $BASELINE/guests"
  echo "current $RR_VMM $RR_GUEST_DIR"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
TABLE=$work/table
fail() { echo "FAIL: $*" >&2; echo "$*" >>"$work/failures"; }

# Serial output minus rr-vmm's own summary lines: what the guest printed.
guest_output() { grep -av '^rr-vmm' "$1"; }

row "guest|run s|record s|overhead %|overhead q1/q3 %|replay s|replay/record|log B|snapshot B|async pos|log B/async|log B/s|QEMU rec s|QEMU replay s|QEMU log B|ours/QEMU log|replays ok"
for g in $GUESTS; do
  qrecords="" qreplays=""
  rm -f "$work"/times.*
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    # Each recorder in turn within one iteration, so load changes hit them alike.
    recorders >"$work/recorders"
    while read -r label vmm guest_dir; do
      export RR_GUEST_DIR="$guest_dir"
      timed "$work/run.out" "$vmm" run --guest "$g" --serial-in none
      echo "$TIMED_SECONDS" >>"$work/times.$label.run"
      [ "$TIMED_STATUS" -eq 0 ] || fail "$label rr-vmm run $g exited $TIMED_STATUS"

      rm -rf "$work/rec"
      timed "$work/record.out" "$vmm" record -o "$work/rec" --guest "$g" --serial-in none
      echo "$TIMED_SECONDS" >>"$work/times.$label.record"
      [ "$TIMED_STATUS" -eq 0 ] || fail "$label rr-vmm record $g exited $TIMED_STATUS"
      # The overhead of this round's record against this round's run: load that changes
      # between rounds cancels out (the medians of the two columns need not be one round's).
      awk -v r="$TIMED_SECONDS" -v p="$(tail -n 1 "$work/times.$label.run")" \
        'BEGIN { printf "%.2f\n", (r - p) / p * 100 }' >>"$work/times.$label.overhead"
      timed "$work/replay.out" "$vmm" replay "$work/rec"
      echo "$TIMED_SECONDS" >>"$work/times.$label.replay"
      [ "$TIMED_STATUS" -eq 0 ] || { fail "$label rr-vmm replay $g exited $TIMED_STATUS"; echo no >"$work/bad.$label"; }
      guest_output "$work/record.out" >"$work/record.guest"
      guest_output "$work/replay.out" >"$work/replay.guest"
      cmp -s "$work/record.guest" "$work/replay.guest" || { fail "$label rr-vmm replay output of $g differs"; echo no >"$work/bad.$label"; }
      grep -q "^RESULT $g status=0 " "$work/record.guest" || fail "$label rr-vmm record of $g: no RESULT status=0"
      # Sizes from the last run (they vary little; see the median times for time). The async
      # count comes from record's summary line, so an older rr-analyze that cannot read this
      # log format is not needed (rr-analyze info --json gives the same numbers).
      async=$(sed -n 's/.* \([0-9]*\) async positions.*/\1/p' "$work/record.out" | tail -n 1)
      echo "$(stat -c %s "$work/rec/events.rrlog") $(stat -c %s "$work/rec/snapshot.rrsnap") ${async:-0}" >"$work/sizes.$label"
    done <"$work/recorders"
    export RR_GUEST_DIR="$BUILD/guests"

    rm -f "$work/qemu.rr"
    # shellcheck disable=SC2086
    timed "$work/qrecord.out" "$QEMU" $QEMU_MICROVM -kernel "$RR_GUEST_DIR/$g.elf" \
      -append lapic_virtual_wire=1 -icount shift=auto,rr=record,rrfile="$work/qemu.rr"
    qrecords="$qrecords $TIMED_SECONDS"
    [ "$TIMED_STATUS" -eq 1 ] || fail "qemu record $g exited $TIMED_STATUS"
    # shellcheck disable=SC2086
    timed "$work/qreplay.out" "$QEMU" $QEMU_MICROVM -kernel "$RR_GUEST_DIR/$g.elf" \
      -append lapic_virtual_wire=1 -icount shift=auto,rr=replay,rrfile="$work/qemu.rr"
    qreplays="$qreplays $TIMED_SECONDS"
    [ "$TIMED_STATUS" -eq 1 ] || fail "qemu replay $g exited $TIMED_STATUS"
    cmp -s "$work/qrecord.out" "$work/qreplay.out" || fail "qemu replay output of $g differs"
    grep -q "^RESULT $g status=0 " "$work/qrecord.out" || fail "qemu record of $g: no RESULT status=0"
    qemu_bytes=$(stat -c %s "$work/qemu.rr")
  done
  recorders >"$work/recorders"
  while read -r label vmm guest_dir; do
    # shellcheck disable=SC2046
    t_run=$(median $(cat "$work/times.$label.run"))
    # shellcheck disable=SC2046
    t_record=$(median $(cat "$work/times.$label.record"))
    # shellcheck disable=SC2046
    t_replay=$(median $(cat "$work/times.$label.replay"))
    read -r log_bytes snapshot_bytes async <"$work/sizes.$label"
    ok=yes
    [ ! -f "$work/bad.$label" ] || ok=no
    rm -f "$work/bad.$label"
    name=$g
    [ "$label" = current ] || name="$g ($label)"
    # shellcheck disable=SC2046
    overhead=$(median $(cat "$work/times.$label.overhead") | awk '{ printf "%+.1f", $1 }')
    # shellcheck disable=SC2046
    overhead_quartiles=$(quartiles $(cat "$work/times.$label.overhead"))
    # shellcheck disable=SC2086
    row "$name|$t_run|$t_record|$overhead|$overhead_quartiles|$t_replay|$(ratio "$t_replay" "$t_record")|$log_bytes|$snapshot_bytes|$async|$(ratio "$log_bytes" "$async" %.0f)|$(ratio "$log_bytes" "$t_record" %.0f)|$(median $qrecords)|$(median $qreplays)|$qemu_bytes|$(ratio "$log_bytes" "$qemu_bytes" %.3f)|$ok"
  done <"$work/recorders"
done
echo "== vmm_record_replay: median of $RUNS runs (wall seconds incl. process start; sizes from the last run) =="
print_table

# Idle: serial-echo waits on a FIFO that gets "quit" only after SECONDS. Recording both a
# short and a long stretch and taking the difference removes boot and exit from the rate.
# idle_record KIND SECONDS [VMM]: sets IDLE_RESULT="wall_seconds log_bytes" for KIND rr-vmm
# (recorded by VMM, default the build's) or qemu.
idle_record() {
  kind=$1
  seconds=$2
  vmm=${3:-$RR_VMM}
  rm -rf "$work/idle" "$work/idle.fifo" "$work/idle.rr"
  t0=$(now)
  if [ "$kind" = rr-vmm ]; then
    mkfifo "$work/idle.fifo"
    (sleep "$seconds" && printf 'quit\n') >"$work/idle.fifo" &
    writer=$!
    timeout "$STEP_TIMEOUT" "$vmm" record -o "$work/idle" --guest serial-echo \
      --serial-in "$work/idle.fifo" >"$work/idle.out" 2>&1 </dev/null
    status=$?
    bytes=$(stat -c %s "$work/idle/events.rrlog" 2>/dev/null || echo 0)
    [ "$status" -eq 0 ] || fail "rr-vmm record serial-echo (idle $seconds s) exited $status"
    wait "$writer" 2>/dev/null
  else
    # QEMU's stdio chardev does not pass the FIFO's line on to the guest under rr=record
    # (measured: the guest never saw "quit"), so stop QEMU after SECONDS instead; its log is
    # written as it goes.
    # shellcheck disable=SC2086
    timeout "$seconds" "$QEMU" $QEMU_MICROVM -kernel "$RR_GUEST_DIR/serial-echo.elf" \
      -append lapic_virtual_wire=1 -icount shift=auto,rr=record,rrfile="$work/idle.rr" \
      </dev/null >"$work/idle.out" 2>&1
    status=$?
    bytes=$(stat -c %s "$work/idle.rr" 2>/dev/null || echo 0)
    [ "$status" -eq 124 ] || fail "qemu record serial-echo (idle $seconds s) exited $status"
    echo "RESULT serial-echo status=0 (stopped by timeout)" >>"$work/idle.out"
  fi
  grep -q '^RESULT serial-echo status=0 ' "$work/idle.out" || fail "$kind idle serial-echo: no RESULT status=0"
  IDLE_RESULT="$(elapsed "$t0") $bytes"
}

TABLE=$work/idle_table
row "recorder|idle ${IDLE_SHORT}s: wall s, log B|idle ${IDLE_LONG}s: wall s, log B|log B/s idle|MB/day idle|rate vs rr-vmm"
# The current rr-vmm first: the other rows are compared with its rate.
{ echo "rr-vmm current $RR_VMM $RR_GUEST_DIR"
  [ -z "$BASELINE" ] || echo "rr-vmm baseline $BASELINE/bin/rr-vmm $BASELINE/guests"
  echo "qemu qemu - $RR_GUEST_DIR"; } >"$work/idle_recorders"
while read -r kind label vmm guest_dir; do
  export RR_GUEST_DIR="$guest_dir"
  idle_record "$kind" "$IDLE_SHORT" "$vmm"
  short=$IDLE_RESULT
  idle_record "$kind" "$IDLE_LONG" "$vmm"
  long=$IDLE_RESULT
  rate=$(echo "$short $long" | awk '{ printf "%.1f", ($4 - $2) / ($3 - $1) }')
  [ "$label" = current ] && rate_current=$rate
  name=$kind
  [ "$label" != baseline ] || name="rr-vmm (baseline)"
  row "$name|$(echo "$short" | tr ' ' ,)|$(echo "$long" | tr ' ' ,)|$rate|$(awk -v r="$rate" 'BEGIN { printf "%.2f", r * 86400 / 1e6 }')|$(ratio "$rate" "${rate_current:-0}" "%.2f x rr-vmm")"
done <"$work/idle_recorders"
export RR_GUEST_DIR="$BUILD/guests"
echo "== idle guest (serial-echo blocked on input, 100 Hz timer): marginal log rate =="
print_table
[ "$LINUX" = 1 ] && . "$(dirname "$0")/vmm_linux_boot.sh"
[ ! -s "$work/failures" ] || { echo "$(wc -l <"$work/failures") failures" >&2; exit 1; }
