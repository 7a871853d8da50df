#!/bin/bash
# Packs the busybox initramfs: make-initramfs.sh GEN_INIT_CPIO_C SRC_DIR BUSYBOX OUT_DIR
# Writes OUT_DIR/initramfs.cpio (newc, what rr-vmm should load: the guest
# kernel then copies it instead of inflating it with emulated CPL0 code) and
# OUT_DIR/initramfs.cpio.gz. Uses the kernel's own gen_init_cpio so that
# device nodes and owners need no root and the archive is byte-reproducible.
set -euo pipefail
gen_init_cpio_source=$1
source_dir=$2
busybox=$3
out_dir=$4

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gcc -O2 -o "$work/gen_init_cpio" "$gen_init_cpio_source"

# gen_init_cpio stores each file's mtime: pin it so a fresh checkout packs
# the same bytes.
install -m 0755 "$source_dir/init" "$work/init"
install -m 0755 "$busybox" "$work/busybox"
touch -d @0 "$work/init" "$work/busybox"

list=$work/initramfs.list
{
    for dir in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /tmp /root /etc; do
        echo "dir $dir 0755 0 0"
    done
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    echo "nod /dev/console 0600 0 0 c 5 1"
    echo "file /init $work/init 0755 0 0"
    echo "file /bin/busybox $work/busybox 0755 0 0"
    # One symlink per applet, made here rather than by `busybox --install` at
    # boot: fewer guest system calls and the same archive every time.
    "$busybox" --list-full | sort | while read -r applet; do
        [[ /$applet == /bin/busybox ]] || echo "slink /$applet /bin/busybox 0777 0 0"
    done
} >"$list"

"$work/gen_init_cpio" -t 0 "$list" >"$out_dir/initramfs.cpio"
gzip -9 -n -c "$out_dir/initramfs.cpio" >"$out_dir/initramfs.cpio.gz"
echo "initramfs: $(grep -c . "$list") entries, $(stat -c %s "$out_dir/initramfs.cpio") bytes, gz $(stat -c %s "$out_dir/initramfs.cpio.gz") bytes"
