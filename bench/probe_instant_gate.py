#!/usr/bin/python3
"""probe_instant_gate.py - the instant-snapshot pause on raw QMP, stop-first
order against the gated order (docs/snapshots.md, "Instant snapshots: the
pause"). No daemon: one QEMU booting the test guest, driven over QMP.

  stop-first  stop, transaction, migrate (background-snapshot): QEMU's
              populate walk over guest RAM runs while the guest is stopped.
  gated       migrate into a pipe that is already full, so QEMU's migration
              thread blocks at its first flush, after the walk and before it
              takes the main lock to stop the guest; then stop, transaction,
              and the gate opens (the filler bytes are read out, the rest of
              the stream is relayed to the image file).

The gated order is only sound where QEMU does not hold its main lock (BQL)
across that first flush: QEMU 7.2 does not; later QEMUs take it around
set-up, so the monitor stops answering while the gate is shut. The script
checks that (query-status with a deadline) and reports it instead of a pause.

Pause = QEMU's own STOP -> RESUME event timestamps. Each QEMU run measures one
snapshot (a fresh run keeps guest RAM in huge pages, which the daemon restores
between snapshots by re-collapsing them).

usage: probe_instant_gate.py [--qemu BINARY] [--ram MIB ...] [--reps N]
"""
import argparse
import array
import fcntl
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "guest", "cache")
F_SETPIPE_SZ = 1031


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.events = []
        self._reply()
        self.call("qmp_capabilities")

    def _reply(self):
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("QMP closed")
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def call(self, command, args=None, fds=None, timeout=None):
        msg = json.dumps({"execute": command, **({"arguments": args} if args else {})}).encode()
        if fds:
            self.sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(array.array("i", fds)))])
        else:
            self.sock.sendall(msg)
        self.sock.settimeout(timeout)
        try:
            reply = self._reply()
        finally:
            self.sock.settimeout(None)
        if "error" in reply:
            raise RuntimeError(f"{command}: {reply['error']['desc']}")
        return reply["return"]

    def event_time(self, name, after):
        for e in self.events:
            t = e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6
            if e["event"] == name and t >= after:
                return t
        return None


def blocked_in_pipe_write(pid):
    """The QEMU thread blocked writing into a full pipe, if any (wchan)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if "pipe_write" in f.read():
                    return tid
        except FileNotFoundError:
            pass
    return None


def one_snapshot(qemu, ram, mode, workdir):
    disk = os.path.join(workdir, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "256M"], check=True)
    qmp_path = os.path.join(workdir, "qmp.sock")
    serial = os.path.join(workdir, "serial.log")
    for p in (qmp_path, serial):
        if os.path.exists(p):
            os.unlink(p)
    proc = subprocess.Popen(
        [qemu, "-name", "guest=gateprobe,debug-threads=on", "-machine", "pc,accel=tcg", "-m", str(ram),
         "-kernel", os.path.join(GUEST, "vmlinuz"), "-initrd", os.path.join(GUEST, "initramfs.img"),
         "-append", f"console=ttyS0 vs.fill={ram // 2} vs.fill_rate=64", "-display", "none",
         "-serial", "file:" + serial, "-qmp", f"unix:{qmp_path},server=on,wait=off",
         "-blockdev", json.dumps({"driver": "file", "filename": disk, "node-name": "s0"}),
         "-blockdev", json.dumps({"driver": "qcow2", "file": "s0", "node-name": "f0"}),
         "-device", "virtio-blk-pci,drive=f0,id=vd0"],
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not os.path.exists(qmp_path):
            time.sleep(0.1)
        qmp = Qmp(qmp_path)
        while "VSFILL done" not in open(serial, errors="replace").read():
            if time.time() > deadline:
                raise RuntimeError("guest did not fill its RAM")
            time.sleep(0.5)
        qmp.call("migrate-set-capabilities", {"capabilities": [
            {"capability": "background-snapshot", "state": True}, {"capability": "events", "state": True}]})
        qmp.call("migrate-set-parameters", {"max-bandwidth": (2**63 - 1) // 2**20 * 2**20})
        image = open(os.path.join(workdir, "memory.img"), "wb")
        relay = None
        started = time.time()
        if mode == "stop-first":
            qmp.call("getfd", {"fdname": "migrate"}, [image.fileno()])
            qmp.call("stop")
            qmp.call("transaction", {"actions": []})
            qmp.call("migrate", {"uri": "fd:migrate"})
            # QEMU 10 leaves a guest it found stopped paused (7.2 resumes it):
            # that order then has no QEMU-made end of the pause to measure.
            wait_until = time.time() + 5
            while qmp.event_time("RESUME", started) is None and time.time() < wait_until:
                qmp.call("query-status")          # reads the events queued meanwhile
                time.sleep(0.01)
            if qmp.event_time("RESUME", started) is None:
                qmp.call("cont")
                return "QEMU leaves the guest paused"
        else:
            rd, wr = os.pipe()
            fcntl.fcntl(wr, F_SETPIPE_SZ, 4096)
            os.write(wr, b"\0" * 4096)            # the pipe is full: the gate is shut
            qmp.call("getfd", {"fdname": "migrate"}, [wr])
            os.close(wr)
            qmp.call("migrate", {"uri": "fd:migrate"})
            while not blocked_in_pipe_write(proc.pid):
                if time.time() > deadline:
                    raise RuntimeError("QEMU's migration never reached the gate")
                time.sleep(0.0005)
            try:
                qmp.call("query-status", timeout=2)
            except socket.timeout:
                os.read(rd, 4096)
                return "the monitor does not answer while the stream is held"
            qmp.call("stop")
            qmp.call("transaction", {"actions": []})
            os.read(rd, 4096)                     # the filler out: the gate opens

            def copy():
                while chunk := os.read(rd, 1 << 20):
                    image.write(chunk)
            relay = threading.Thread(target=copy)
            relay.start()
        while qmp.call("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
            time.sleep(0.05)
        if relay:
            relay.join()
        image.close()
        time.sleep(0.2)
        info = qmp.call("query-migrate")
        if info.get("status") != "completed":
            raise RuntimeError(f"migration {info.get('status')}")
        stop = qmp.event_time("STOP", started - 0.001)
        resume = qmp.event_time("RESUME", stop)
        return (resume - stop) * 1000, info.get("setup-time")
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--ram", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print("| RAM | order | pause (STOP->RESUME), median [min-max] | QEMU setup-time |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="gateprobe-") as workdir:
        for ram in args.ram:
            for mode in ("stop-first", "gated"):
                runs = [one_snapshot(args.qemu, ram, mode, workdir) for _ in range(args.reps)]
                why = next((r for r in runs if isinstance(r, str)), None)
                if why:
                    print(f"| {ram} MiB | {mode} | n/a: {why} |  |", flush=True)
                    continue
                pauses = [r[0] for r in runs]
                setups = [str(r[1]) for r in runs]
                print(f"| {ram} MiB | {mode} | {statistics.median(pauses):.1f} ms "
                      f"[{min(pauses):.1f}-{max(pauses):.1f}] | {', '.join(setups)} ms |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
