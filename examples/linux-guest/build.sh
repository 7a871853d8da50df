#!/bin/bash
# Builds the replay-friendly Linux guest (kernel + busybox initramfs) from
# Debian's linux-source-6.1, cached by the hash of every input.
#
#   build.sh [--out DIR] [--keep-tree] [--jobs N]  build if needed, print progress
#   build.sh --print-dir                           print the cache dir (building if needed)
#   build.sh --print-hash                          print the input hash only, never build
#
# Outputs go to ${RR_CACHE_DIR:-$HOME/.cache/rrkvm}/linux-guest/<hash>/ (see
# docs/linux-guest.md); --out DIR also copies them to DIR.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${RR_CACHE_DIR:-$HOME/.cache/rrkvm}/linux-guest
kernel_tarball=/usr/src/linux-source-6.1.tar.xz
busybox_binary=/bin/busybox

out_copy_dir=""
mode=build
keep_tree=0
jobs=$(nproc)
while [[ $# -gt 0 ]]; do
    case $1 in
    --out)
        out_copy_dir=${2:?--out needs a directory}
        shift 2
        ;;
    --print-dir) mode=print-dir; shift ;;
    --print-hash) mode=print-hash; shift ;;
    --keep-tree) keep_tree=1; shift ;;
    --jobs)
        jobs=${2:?--jobs needs a number}
        shift 2
        ;;
    -h | --help)
        sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
done

# Progress goes to stderr so that --print-dir prints nothing but the path on stdout.
say() { echo "[linux-guest] $*" >&2; }
die() {
    echo "[linux-guest] error: $*" >&2
    exit 1
}

package_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null || die "Debian package $1 is not installed (scripts/setup.sh installs it)"
}

# Every input that changes the result, one line each; its sha256 names the cache dir.
describe_inputs() {
    local file
    (
        cd "$script_dir"
        for file in build.sh make-initramfs.sh rr-guest.config cmdline.txt patches/*.patch $(find initramfs -type f | sort); do
            sha256sum "$file"
        done
    )
    echo "package linux-source-6.1 $(package_version linux-source-6.1)"
    echo "package busybox-static $(package_version busybox-static)"
    echo "compiler $(gcc --version | head -n1)"
    echo "linker $(ld --version | head -n1)"
}

[[ -f $kernel_tarball ]] || die "$kernel_tarball is missing: install linux-source-6.1 (scripts/setup.sh)"
[[ -x $busybox_binary ]] || die "$busybox_binary is missing: install busybox-static (scripts/setup.sh)"
inputs=$(describe_inputs)
input_hash=$(sha256sum <<<"$inputs" | cut -c1-64)
result_dir=$cache_root/$input_hash

if [[ $mode == print-hash ]]; then
    echo "$input_hash"
    exit 0
fi

copy_out() {
    if [[ -n $out_copy_dir ]]; then
        mkdir -p "$out_copy_dir"
        cp -a "$result_dir"/. "$out_copy_dir"/
        say "copied to $out_copy_dir"
    fi
}

finish() {
    copy_out
    if [[ $mode == print-dir ]]; then echo "$result_dir"; fi
    exit 0
}

if [[ -f $result_dir/manifest.txt ]]; then
    say "up to date: $result_dir"
    finish
fi

# One builder per input hash; a second caller waits and then finds the result.
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock-$input_hash"
if ! flock -n 9; then
    say "another build of $input_hash is running; waiting for it"
    flock 9
fi
if [[ -f $result_dir/manifest.txt ]]; then
    say "built by the other process: $result_dir"
    finish
fi

work_dir=$cache_root/.build-$input_hash
tree=$work_dir/linux
staging=$work_dir/out
rm -rf "$work_dir"
mkdir -p "$tree" "$staging"
log=$work_dir/build.log
started=$(date +%s)

say "inputs hash $input_hash"
say "work dir $work_dir (log: $log)"

# Kbuild embeds user, host and time in the image; fix them so the same inputs
# give the same kernel banner.
export KBUILD_BUILD_USER=rrkvm KBUILD_BUILD_HOST=linux-guest
export KBUILD_BUILD_TIMESTAMP="1970-01-01 00:00:00 UTC"
kmake() { make -C "$tree" ARCH=x86_64 "$@" >>"$log" 2>&1 || die "make $* failed; last lines of $log:
$(tail -n 30 "$log")"; }

say "unpacking $kernel_tarball"
tar -xf "$kernel_tarball" -C "$tree" --strip-components=1

for patch_file in "$script_dir"/patches/*.patch; do
    say "applying patches/$(basename "$patch_file")"
    patch -d "$tree" -p1 --forward --batch --no-backup-if-mismatch <"$patch_file" >>"$log" 2>&1 ||
        die "patch $patch_file does not apply; see $log"
done

say "configuring: tinyconfig + rr-guest.config"
kmake tinyconfig
# -n: symbols that only become visible through the fragment (IPv6 and VT once
# NET and TTY are on, ...) get allnoconfig's "no", not their defaults.
(cd "$tree" && ARCH=x86_64 scripts/kconfig/merge_config.sh -n .config "$script_dir/rr-guest.config") >>"$log" 2>&1 ||
    die "merge_config.sh failed; see $log"
kmake olddefconfig

# Kconfig drops an option silently when a dependency is missing; refuse that.
config_problems=""
while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Z0-9_]+)=(.*)$ ]]; then
        grep -qxF "$line" "$tree/.config" || config_problems+="  wanted $line, got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$tree/.config" || echo absent)"$'\n'
    elif [[ $line =~ ^#\ (CONFIG_[A-Z0-9_]+)\ is\ not\ set$ ]]; then
        if grep -qE "^${BASH_REMATCH[1]}=" "$tree/.config"; then
            config_problems+="  wanted ${BASH_REMATCH[1]} off, got: $(grep -E "^${BASH_REMATCH[1]}=" "$tree/.config")"$'\n'
        fi
    fi
done <"$script_dir/rr-guest.config"
[[ -z $config_problems ]] || die "rr-guest.config did not survive olddefconfig:
$config_problems"

say "compiling vmlinux and bzImage with make -j$jobs (about 7 minutes on 2 cores)"
make -C "$tree" ARCH=x86_64 -j"$jobs" vmlinux bzImage >>"$log" 2>&1 &
make_pid=$!
while kill -0 "$make_pid" 2>/dev/null; do
    sleep 30
    kill -0 "$make_pid" 2>/dev/null || break
    say "  ... $(($(date +%s) - started)) s, $(find "$tree" -name '*.o' | wc -l) objects"
done
wait "$make_pid" || die "kernel build failed; last lines of $log:
$(tail -n 30 "$log")"
kernel_built=$(date +%s)
say "kernel built in $((kernel_built - started)) s"

vmlinux=$tree/vmlinux
say "checking vmlinux: PVH note, debug info, kallsyms"
readelf -n "$vmlinux" | grep 'Xen.*0x00000012' >/dev/null || die "vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
readelf -S "$vmlinux" | grep '\.debug_info' >/dev/null || die "vmlinux has no .debug_info"
grep ' kallsyms_names$' "$tree/System.map" >/dev/null || die "System.map has no kallsyms_names: CONFIG_KALLSYMS is off"

say "listing the rdtsc/rdtscp sites left in vmlinux"
objdump -d --no-show-raw-insn "$vmlinux" | awk '
    /^[0-9a-f]+ <.*>:$/ { fn = $2 }
    /\trdtscp?( |$)/ { sub(/:$/, "", $1); print $1, fn, $2 }' >"$staging/rdtsc-sites.txt"

say "building the busybox initramfs"
"$script_dir/make-initramfs.sh" "$tree/usr/gen_init_cpio.c" "$script_dir/initramfs" "$busybox_binary" "$staging" >>"$log" 2>&1 ||
    die "initramfs build failed; see $log"

cp "$vmlinux" "$staging/vmlinux"
cp "$tree/arch/x86/boot/bzImage" "$staging/bzImage"
cp "$tree/System.map" "$staging/System.map"
cp "$tree/.config" "$staging/config"
cp "$script_dir/cmdline.txt" "$staging/cmdline.txt"
finished=$(date +%s)
{
    echo "# rr-kvm Linux guest, built by examples/linux-guest/build.sh"
    echo "input_hash $input_hash"
    echo "built_at $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) in $((finished - started)) s with make -j$jobs"
    echo "kernel_release $(cat "$tree/include/config/kernel.release")"
    echo "vmlinux_entry $(readelf -h "$vmlinux" | awk '/Entry point/ {print $4}')"
    # The note's descriptor is the little-endian physical address of pvh_start_xen.
    echo "pvh_entry $(readelf -n "$vmlinux" | awk '/Xen/ && /0x00000012/ {
        getline; sub(/.*description data: */, ""); n = split($0, b, " ")
        hex = ""; for (i = n; i >= 1; i--) hex = hex b[i]; print "0x" hex }')"
    echo "rdtsc_sites $(wc -l <"$staging/rdtsc-sites.txt") (see rdtsc-sites.txt and docs/linux-guest.md)"
    echo "cmdline $(cat "$staging/cmdline.txt")"
    echo "# inputs"
    echo "$inputs"
    echo "# files (sha256)"
    (cd "$staging" && sha256sum vmlinux bzImage System.map config initramfs.cpio initramfs.cpio.gz cmdline.txt rdtsc-sites.txt)
} >"$staging/manifest.txt"
cp "$log" "$staging/build.log"

# Publish atomically: readers test for manifest.txt inside a complete dir.
rm -rf "$result_dir"
mv "$staging" "$result_dir"
if [[ $keep_tree -eq 1 ]]; then
    say "kept the kernel tree in $tree"
else
    rm -rf "$work_dir"
fi
say "done in $((finished - started)) s: $result_dir"
finish
