#!/bin/sh
# Boot-to-exit time of each test guest under `rr-vmm run`, next to QEMU TCG booting the same
# PVH ELF in the same run (microvm: no firmware; `-machine pc` shown once for hello), plus
# synchronous exits (landmarks) per second from `rr-vmm run --stats`. Medians of RUNS runs.
# Prints a table; asserts nothing about speed. Exit 1 only if a guest run fails.
# usage: bench/vmm_guests.sh [BUILD_DIR]   (env: RUNS=5, GUESTS="hello ticks spin3 demo")
set -u
[ $# -ge 1 ] && BUILD=$(cd "$1" && pwd)
. "$(dirname "$0")/vmm_lib.sh"
: "${GUESTS:=hello ticks spin3 demo}"
check_tools

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
TABLE=$work/table
failures=0

row "guest|rr-vmm run s|QEMU TCG microvm s|QEMU/rr-vmm|landmarks|PIO|HLT|us/landmark|landmarks/s|result"
for g in $GUESTS; do
  ours="" theirs="" stats=""
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    timed "$work/run.out" "$RR_VMM" run --guest "$g" --serial-in none --stats
    ours="$ours $TIMED_SECONDS"
    [ "$TIMED_STATUS" -eq 0 ] || { echo "rr-vmm run $g failed ($TIMED_STATUS):" >&2; tail -5 "$work/run.out" >&2; failures=$((failures + 1)); }
    # "rr-vmm: 0.046 s, 491 landmarks (491 PIO, 0 MMIO, 0 HLT), 3 async stops, 2 interrupts"
    stats="$stats
$(grep -a '^rr-vmm: .* landmarks' "$work/run.out")"
    ours_result=$(result_line "$work/run.out")
    # shellcheck disable=SC2086
    timed "$work/qemu.out" "$QEMU" $QEMU_MICROVM -kernel "$RR_GUEST_DIR/$g.elf" -append lapic_virtual_wire=1
    theirs="$theirs $TIMED_SECONDS"
    # isa-debug-exit turns guest status 0 into QEMU status 1.
    [ "$TIMED_STATUS" -eq 1 ] || { echo "qemu $g failed ($TIMED_STATUS):" >&2; tail -5 "$work/qemu.out" >&2; failures=$((failures + 1)); }
    qemu_result=$(result_line "$work/qemu.out")
  done
  # Exit counts are the same in every run for these guests except ticks (time-bound): medians.
  landmarks=$(median $(echo "$stats" | awk '/landmarks/ { print $4 }'))
  pio=$(median $(echo "$stats" | sed -n 's/.*(\([0-9]*\) PIO.*/\1/p'))
  hlt=$(median $(echo "$stats" | sed -n 's/.* \([0-9]*\) HLT).*/\1/p'))
  vmm_seconds=$(median $(echo "$stats" | awk '/landmarks/ { print $2 }'))
  t_ours=$(median $ours)
  t_theirs=$(median $theirs)
  same="ok"
  case $ours_result in "RESULT $g status=0 "*) ;; *) same="FAIL rr-vmm" ;; esac
  case $qemu_result in "RESULT $g status=0 "*) ;; *) same="$same FAIL qemu" ;; esac
  row "$g|$t_ours|$t_theirs|$(ratio "$t_theirs" "$t_ours")|$landmarks|$pio|$hlt|$(ratio "$vmm_seconds" "$landmarks" %.7f | awk '{ printf "%.1f", $1 * 1e6 }')|$(ratio "$landmarks" "$vmm_seconds" %.0f)|$same"
done

# hello is almost only serial PIO at emulated CPL0, so its time per landmark (rr-vmm's own
# clock, without process start) bounds the PIO exit round trip from above.
echo "== vmm_guests: boot to exit, median of $RUNS runs (wall seconds incl. process start) =="
print_table

# Firmware cost of QEMU's pc machine (SeaBIOS under TCG) against microvm, hello only.
pc=""
i=0
while [ "$i" -lt "$RUNS" ]; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  timed "$work/pc.out" "$QEMU" $QEMU_PC -kernel "$RR_GUEST_DIR/hello.elf"
  pc="$pc $TIMED_SECONDS"
  [ "$TIMED_STATUS" -eq 1 ] || { echo "qemu -machine pc hello failed ($TIMED_STATUS)" >&2; failures=$((failures + 1)); }
done
echo "QEMU TCG -machine pc (SeaBIOS + PVH) hello: $(median $pc) s median"
[ "$failures" -eq 0 ] || { echo "$failures guest runs failed" >&2; exit 1; }
