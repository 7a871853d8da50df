# Shared helpers for bench/vmm_*.sh (sourced, not run). POSIX sh + awk.
# Expects BUILD (build directory with bin/rr-vmm, bin/rr-analyze and guests/*.elf).

: "${BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build}"
: "${RUNS:=5}"            # runs per measurement; the median is reported
: "${STEP_TIMEOUT:=180}"  # seconds any single guest run may take before it is killed
RR_VMM=$BUILD/bin/rr-vmm
RR_ANALYZE=$BUILD/bin/rr-analyze
RR_GUEST_DIR=$BUILD/guests
export RR_GUEST_DIR
QEMU=$(command -v qemu-system-x86_64 || true)

# QEMU TCG with the same PVH ELF: microvm boots it directly (no firmware); the kernel
# routes the 8259 through the LAPIC there (lapic_virtual_wire=1, see schemas/test-guest-abi.md).
QEMU_MICROVM="-machine microvm,pit=on,pic=on,rtc=on,isa-serial=on -accel tcg -cpu max -m 64
  -nodefaults -no-reboot -display none -monitor none -serial stdio
  -device isa-debug-exit,iobase=0xf4,iosize=0x04"
QEMU_PC="-machine pc -accel tcg -cpu max -m 64 -nodefaults -no-reboot -display none
  -monitor none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04"

die() { echo "$0: $*" >&2; exit 1; }

check_tools() {
  [ -x "$RR_VMM" ] || die "$RR_VMM missing: ninja -C $BUILD rr-vmm rr-analyze test-guests"
  [ -x "$RR_ANALYZE" ] || die "$RR_ANALYZE missing: ninja -C $BUILD rr-analyze"
  [ -n "$QEMU" ] || die "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
  for g in $GUESTS; do [ -f "$RR_GUEST_DIR/$g.elf" ] || die "$RR_GUEST_DIR/$g.elf missing"; done
}

now() { date +%s.%N; }

# elapsed START: seconds since START (from now()), 3 decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# quartiles VALUES...: "Q1/Q3" (linear interpolation), "n/a" for fewer than two values.
quartiles() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    function q(p,  h, lo) { h = (NR - 1) * p + 1; lo = int(h); return v[lo] + (h - lo) * (v[lo + 1] - v[lo]) }
    END { if (NR < 2) { print "n/a"; exit } printf "%+.1f/%+.1f\n", q(0.25), q(0.75) }'
}

# ratio A B [FORMAT]: A / B, "n/a" when B is zero or not a number.
ratio() {
  awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN {
    if (b + 0 == 0) print "n/a"; else printf f "\n", a / b }'
}

# timed OUT_FILE CMD...: runs CMD under the step timeout with stdin from /dev/null, output to
# OUT_FILE; sets TIMED_SECONDS (wall) and TIMED_STATUS. Call it directly, not in $(...).
timed() {
  timed_out=$1
  shift
  timed_t0=$(now)
  timeout "$STEP_TIMEOUT" "$@" </dev/null >"$timed_out" 2>&1
  TIMED_STATUS=$?
  TIMED_SECONDS=$(elapsed "$timed_t0")
}

# result_line FILE: the guest's RESULT line (its hash tells whether the run was right).
result_line() { grep -a '^RESULT ' "$1" | head -n 1; }

# Appends a table row; columns separated by '|'.
row() { printf '%s\n' "$*" >>"$TABLE"; }

print_table() {
  awk -F'|' '{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
               if (NF > n) n = NF; rows = NR }
    END { for (r = 1; r <= rows; r++) { line = "|"
            for (i = 1; i <= n; i++) line = line sprintf(" %-" w[i] "s |", cell[r, i])
            print line
            if (r == 1) { line = "|"; for (i = 1; i <= n; i++) { d = ""; for (k = 0; k < w[i] + 2; k++) d = d "-"; line = line d "|" }; print line } } }' "$TABLE"
}
