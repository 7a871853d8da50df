#!/bin/bash
# Boots the cached Linux guest under QEMU TCG and checks that it reaches the
# busybox init and ends when asked to:
#   1. rrdemo=poweroff with initramfs.cpio.gz: banner, then "reboot: System
#      halted" (no ACPI, so the kernel halts); QEMU is stopped by this script.
#   2. rrdemo=reboot with the uncompressed initramfs.cpio: banner, then the
#      keyboard-controller reset makes QEMU (-no-reboot) exit by itself.
# Also checks vmlinux for debug info and the PVH note that QEMU boots it by.
#
#   check-qemu-boot.sh [--dir GUEST_DIR] [--timeout SECONDS]
# Without --dir it asks build.sh for the cache dir (building if needed).
# Exit status: 0 pass, 1 fail, 77 skipped (no qemu-system-x86_64).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
guest_dir=""
timeout_s=600
while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) guest_dir=${2:?--dir needs a directory}; shift 2 ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    *) echo "check-qemu-boot.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

qemu=$(command -v qemu-system-x86_64 || true)
if [[ -z $qemu ]]; then
    echo "SKIP: qemu-system-x86_64 not installed (Debian package qemu-system-x86)"
    exit 77
fi
[[ -n $guest_dir ]] || guest_dir=$("$script_dir/build.sh" --print-dir)

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
pass() { echo "ok:   $*"; }

echo "guest: $guest_dir"
for file in vmlinux initramfs.cpio initramfs.cpio.gz cmdline.txt; do
    [[ -f $guest_dir/$file ]] || { echo "FAIL: $guest_dir/$file missing"; exit 1; }
done

if file -L "$guest_dir/vmlinux" | grep 'ELF 64-bit.*with debug_info, not stripped' >/dev/null; then
    pass "file: vmlinux is a 64-bit ELF with debug_info"
else
    fail "file vmlinux: $(file -L -b "$guest_dir/vmlinux")"
fi
if readelf -n "$guest_dir/vmlinux" | grep 'Xen.*0x00000012' >/dev/null; then
    pass "readelf -n: PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) present"
else
    fail "readelf -n: no PVH entry note"
fi

cmdline=$(cat "$guest_dir/cmdline.txt")
work=$(mktemp -d)
qemu_pid=""
cleanup() {
    if [[ -n $qemu_pid ]]; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# boot NAME INITRD DEMO FINAL_LINE EXPECT_QEMU_EXIT
boot() {
    local name=$1 initrd=$2 demo=$3 final_line=$4 expect_exit=$5
    local log=$work/$name.log start now elapsed exited=0
    echo "--- boot $name: $initrd, rrdemo=$demo"
    start=$(date +%s.%N)
    "$qemu" -machine pc -cpu max -m 512 -nographic -no-reboot \
        -display none -monitor none -serial "file:$log" -nic none \
        -kernel "$guest_dir/vmlinux" -initrd "$guest_dir/$initrd" \
        -append "$cmdline rrdemo=$demo" </dev/null >"$work/$name.qemu.out" 2>&1 &
    qemu_pid=$!
    while true; do
        if grep -qF "$final_line" "$log" 2>/dev/null; then break; fi
        if ! kill -0 "$qemu_pid" 2>/dev/null; then
            exited=1
            break
        fi
        now=$(date +%s.%N)
        if (($(echo "$now - $start > $timeout_s" | bc))); then
            fail "$name: no '$final_line' after $timeout_s s"
            break
        fi
        sleep 0.2
    done
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    if [[ $expect_exit -eq 1 ]]; then
        # Give QEMU a moment to act on the reset itself.
        for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || { exited=1; break; }; sleep 0.1; done
        [[ $exited -eq 1 ]] && pass "$name: QEMU exited by itself" || fail "$name: QEMU still running after the reset"
    fi
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    cp "$log" "${TMPDIR:-/tmp}/rrkvm-linux-guest-$name.log" 2>/dev/null || true

    local line
    for line in "Linux version" "Run /init as init process" "rr-kvm guest: init started" \
        "rr-kvm guest: rrdemo=$demo" "$final_line"; do
        if grep -qF "$line" "$log"; then pass "$name: console shows '$line'"; else fail "$name: console lacks '$line'"; fi
    done
    if grep -qE "Kernel panic|Oops|BUG:|WARNING:" "$log"; then fail "$name: kernel reported a problem"; fi
    printf 'time: %s to the end of the run (%s); kernel reached /init at %s\n' \
        "$(printf '%.1f s' "$elapsed")" "$name" "$(grep -m1 'Run /init' "$log" | cut -d']' -f1 | tr -d '[ ') s guest time"
    echo "console log: ${TMPDIR:-/tmp}/rrkvm-linux-guest-$name.log"
}

boot poweroff initramfs.cpio.gz poweroff "reboot: System halted" 0
boot reboot initramfs.cpio reboot "reboot: Restarting system" 1

if [[ $failures -ne 0 ]]; then
    echo "FAILED: $failures check(s)"
    exit 1
fi
echo "PASSED"
