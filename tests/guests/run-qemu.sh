#!/bin/sh
# Runs one test guest under QEMU TCG and checks its serial output and exit status.
# usage: run-qemu.sh PROGRAM IMAGE [--input FILE] [--expect REGEX]... [--append CMDLINE]
#                    [--machine pc|microvm] [-- extra qemu args]
# Exit: 0 pass, 1 fail, 77 skip (no qemu-system-x86_64).
set -u
program=$1
image=$2
shift 2
input=/dev/null
append=""
machine=pc
expects=""
while [ $# -gt 0 ]; do
  case $1 in
    --input) input=$2; shift 2 ;;
    --expect) expects="$expects
$2"; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --machine) machine=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "run-qemu.sh: unknown option $1" >&2; exit 1 ;;
  esac
done
qemu=$(command -v qemu-system-x86_64) || { echo "SKIP: qemu-system-x86_64 not installed"; exit 77; }
[ -f "$image" ] || { echo "FAIL: guest image $image missing (build target test-guests)"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
case $machine in
  pc) machine_args="-machine pc" ;;
  microvm) machine_args="-machine microvm,pit=on,pic=on,rtc=on,isa-serial=on -global virtio-mmio.force-legacy=false" ;;
  *) echo "run-qemu.sh: unknown machine $machine" >&2; exit 1 ;;
esac
if [ -n "$append" ]; then set -- -append "$append" "$@"; fi
# shellcheck disable=SC2086
timeout 120 "$qemu" $machine_args -cpu max -m 64 -nodefaults -no-reboot -display none -monitor none \
  -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$image" \
  "$@" <"$input" >"$log" 2>&1
status=$?
cat "$log"
# isa-debug-exit turns guest status v into (v << 1) | 1; status 0 is 1.
if [ "$status" -ne 1 ]; then
  echo "FAIL: $program: qemu exited with $status, expected 1 (guest status 0)"
  exit 1
fi
if ! grep -Eq "^RESULT $program status=0 hash=[0-9a-f]+" "$log"; then
  echo "FAIL: $program: no 'RESULT $program status=0' line"
  exit 1
fi
echo "$expects" | while IFS= read -r pattern; do
  [ -z "$pattern" ] && continue
  if ! grep -Eq -- "$pattern" "$log"; then
    echo "FAIL: $program: output does not match /$pattern/"
    exit 1
  fi
done || exit 1
echo "PASS: $program"
