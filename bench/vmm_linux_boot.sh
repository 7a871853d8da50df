# Sourced by vmm_record_replay.sh when LINUX=1 (uses its work dir, fail(), timed, row).
# The real Linux guest booted until init starts, recorded and replayed by rr-vmm and by
# QEMU TCG rr=record/replay, once each. Same kernel, initramfs and command line; QEMU gets
# rdinit=/bin/false so that, as under rr-vmm (where init's first system call faults, see
# HOST-KVM-NOTES.md), the kernel panics as soon as init ends and panic=-1 resets the machine.
linux_dir=${RR_LINUX_GUEST_DIR:-$("$(dirname "$0")/../examples/linux-guest/build.sh" --print-dir 2>/dev/null)}
if [ -z "$linux_dir" ] || [ ! -f "$linux_dir/vmlinux" ]; then
  fail "LINUX=1: no Linux guest (examples/linux-guest/build.sh --print-dir, or RR_LINUX_GUEST_DIR)"
else
  : "${LINUX_TIMEOUT:=900}"
  saved_timeout=$STEP_TIMEOUT
  STEP_TIMEOUT=$LINUX_TIMEOUT
  export RR_LINUX_GUEST_DIR="$linux_dir"
  # Console lines up to and including the kernel's "Run /init": the common part of both boots.
  console_to_init() { tr -d '\r' <"$1" | grep -av '^rr-vmm' | sed -n "1,/Run \/[^ ]* as init process/p"; }
  rm -rf "$work/linux"
  timed "$work/linux.record" "$RR_VMM" record --linux -o "$work/linux" --serial-in none
  l_record=$TIMED_SECONDS
  [ "$TIMED_STATUS" -eq 0 ] || fail "rr-vmm record --linux exited $TIMED_STATUS"
  grep -aq 'Run /init' "$work/linux.record" || fail "rr-vmm record --linux: no 'Run ... as init process'"
  timed "$work/linux.replay" "$RR_VMM" replay "$work/linux"
  l_replay=$TIMED_SECONDS
  l_ok=yes
  [ "$TIMED_STATUS" -eq 0 ] || { fail "rr-vmm replay of the Linux boot exited $TIMED_STATUS"; l_ok=no; }
  guest_output "$work/linux.record" >"$work/linux.record.guest"
  guest_output "$work/linux.replay" >"$work/linux.replay.guest"
  cmp -s "$work/linux.record.guest" "$work/linux.replay.guest" ||
    { fail "rr-vmm replay output of the Linux boot differs"; l_ok=no; }
  l_bytes=$(stat -c %s "$work/linux/events.rrlog" 2>/dev/null || echo 0)
  l_async=$(sed -n 's/.* \([0-9]*\) async positions.*/\1/p' "$work/linux.record" | tail -n 1)
  rm -rf "$work/linux"

  cmdline="$(cat "$linux_dir/cmdline.txt") rdinit=/bin/false"
  qemu_linux() {
    # shellcheck disable=SC2086
    timed "$1" "$QEMU" $QEMU_PC -m 512 -kernel "$linux_dir/vmlinux" \
      -initrd "$linux_dir/initramfs.cpio" -append "$cmdline" \
      -icount shift=auto,rr="$2",rrfile="$work/linux.qemu.rr"
  }
  rm -f "$work/linux.qemu.rr"
  qemu_linux "$work/linux.qrecord" record
  q_record=$TIMED_SECONDS
  [ "$TIMED_STATUS" -eq 0 ] || fail "qemu record of the Linux boot exited $TIMED_STATUS"
  grep -aq 'as init process' "$work/linux.qrecord" || fail "qemu record of the Linux boot: no 'Run ... as init process'"
  qemu_linux "$work/linux.qreplay" replay
  q_replay=$TIMED_SECONDS
  [ "$TIMED_STATUS" -eq 0 ] || fail "qemu replay of the Linux boot exited $TIMED_STATUS"
  cmp -s "$work/linux.qrecord" "$work/linux.qreplay" || fail "qemu replay output of the Linux boot differs"
  q_bytes=$(stat -c %s "$work/linux.qemu.rr" 2>/dev/null || echo 0)
  console_to_init "$work/linux.record" | wc -l >"$work/linux.lines"
  STEP_TIMEOUT=$saved_timeout

  TABLE=$work/linux_table
  row "recorder|record s|replay s|replay/record|log B|async pos|console lines to Run /init|replay ok"
  row "rr-vmm|$l_record|$l_replay|$(ratio "$l_replay" "$l_record")|$l_bytes|${l_async:-0}|$(cat "$work/linux.lines")|$l_ok"
  row "qemu|$q_record|$q_replay|$(ratio "$q_replay" "$q_record")|$q_bytes|n/a|$(console_to_init "$work/linux.qrecord" | wc -l)|yes"
  echo "== Linux boot to init (one run each): ours/QEMU log $(ratio "$l_bytes" "$q_bytes" %.3f) =="
  print_table
fi
