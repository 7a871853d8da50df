#!/usr/bin/env python3
"""End-to-end test of the `net` guest under QEMU microvm (TCG).

The guest's virtio-net device is connected to this script by QEMU's UDP socket netdev on
127.0.0.1 only (no network access). The script sends numbered frames, checks every reply
(MACs swapped, "RRACK", sequence, FNV-1a hash of the frame), sends the quit frame, checks the
combined hash in the "RRBYE" reply and in the guest's RESULT line.
Exit: 0 pass, 1 fail, 77 skip (no qemu-system-x86_64)."""
import argparse
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading

MASK = (1 << 64) - 1
PEER_MAC = bytes.fromhex("020000000001")
GUEST_MAC = bytes.fromhex("525400123456")
ETHERTYPE = b"\x88\xb5"


def fold(h, v):
    return ((h ^ v) * 0x100000001B3) & MASK


def fnv(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = fold(h, b)
    return h


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def virtio_mmio_cmdline():
    # microvm's virtio-mmio transports (512 bytes apart from 0xfeb00000, GSI 5 + index with
    # ioapic2=off); its automatic command-line entries are not passed to PVH kernels. Its
    # firmware leaves the local APIC masking the 8259, hence lapic_virtual_wire=1.
    return "lapic_virtual_wire=1 " + " ".join(f"virtio_mmio.device=512@{0xFEB00000 + i * 512:#x}:{5 + i}" for i in range(8))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--qemu-arg", action="append", default=[],
                        help="extra QEMU argument, e.g. --qemu-arg=-accel --qemu-arg=kvm")
    args = parser.parse_args()
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("SKIP: qemu-system-x86_64 not installed")
        return 77

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(args.timeout)
    our_port = sock.getsockname()[1]
    qemu_port = free_udp_port()
    command = [qemu, "-machine", "microvm,pit=on,pic=on,rtc=on,isa-serial=on,ioapic2=off",
               "-global", "virtio-mmio.force-legacy=false", "-cpu", "max", "-m", "64",
               "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
               "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
               "-kernel", args.image, "-append", virtio_mmio_cmdline(),
               "-netdev", f"socket,id=n0,udp=127.0.0.1:{our_port},localaddr=127.0.0.1:{qemu_port}",
               "-device", f"virtio-net-device,netdev=n0,mac={GUEST_MAC.hex(':')}"] + args.qemu_arg
    guest = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    output = []

    def pump():
        for line in guest.stdout:
            output.append(line)
            sys.stdout.write(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=args.timeout)
            if line is None:
                raise RuntimeError("guest ended before it was ready")
            if line.startswith("net: waiting for frames"):
                break

        def exchange(payload):
            frame = GUEST_MAC + PEER_MAC + ETHERTYPE + payload
            frame += bytes(max(0, 60 - len(frame)))
            sock.sendto(frame, ("127.0.0.1", qemu_port))
            reply = sock.recv(4096)
            if reply[:12] != PEER_MAC + GUEST_MAC or reply[12:14] != ETHERTYPE:
                raise RuntimeError(f"reply header wrong: {reply[:14].hex()}")
            return frame, reply[14:]

        combined = 0xCBF29CE484222325
        for seq in range(args.frames):
            body = bytes((seq * 7 + i) & 0xFF for i in range((seq * 37) % 300))
            frame, reply = exchange(b"RRNET" + struct.pack(">I", seq) + body)
            expected = b"RRACK" + struct.pack(">I", seq) + f"{fnv(frame):016x}".encode()
            if reply[: len(expected)] != expected:
                raise RuntimeError(f"frame {seq}: reply {reply[:25]!r}, expected {expected!r}")
            combined = fold(combined, fnv(frame))
        # The guest exits right after sending its goodbye, and QEMU may exit before
        # it puts that last frame on the socket: then the RESULT line (checked
        # below, it carries the same combined hash) is the evidence.
        try:
            _, reply = exchange(b"RRQUIT")
        except socket.timeout:
            if guest.wait(timeout=args.timeout) is None:
                raise
            print("note: goodbye frame not received (QEMU exited first); checking RESULT")
        else:
            expected = b"RRBYE" + f"{combined:016x}".encode()
            if reply[: len(expected)] != expected:
                raise RuntimeError(f"quit reply {reply[:21]!r}, expected {expected!r}")
        status = guest.wait(timeout=args.timeout)
    except (RuntimeError, OSError, queue.Empty, subprocess.TimeoutExpired) as error:
        guest.kill()
        guest.wait()
        print(f"FAIL: net: {error!r}")
        return 1
    text = "".join(output)
    if status != 1:
        print(f"FAIL: net: qemu exited with {status}, expected 1 (guest status 0)")
        return 1
    if f"RESULT net status=0 hash={combined:x}\n" not in text:
        print(f"FAIL: net: no 'RESULT net status=0 hash={combined:x}' line")
        return 1
    print(f"PASS: net ({args.frames} frames, hash {combined:x})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
