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
The table goes to bench/results/instant-gate-<QEMU version>.md.
"""
import array
import contextlib
import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402

GUEST = os.path.join(HERE, "..", "tests", "guest", "cache")
F_SETPIPE_SZ = 1031
PAGE = 4096


class Qmp:
    """QMP client with fd passing and the events it has read, timestamps kept."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        # Unbuffered, so that select() on the socket sees every unread line.
        self.file = self.sock.makefile("rb", buffering=0)
        self.events = []
        self._next_reply()
        self.call("qmp_capabilities")

    def _read(self, timeout=None):
        if timeout is not None and not select.select([self.sock], [], [], timeout)[0]:
            raise socket.timeout
        line = self.file.readline()
        if not line:
            raise RuntimeError("QMP closed")
        msg = json.loads(line)
        if "event" in msg:
            ts = msg["timestamp"]
            self.events.append((msg["event"], ts["seconds"] + ts["microseconds"] / 1e6))
        return msg

    def _next_reply(self, timeout=None):
        while "event" in (msg := self._read(timeout)):
            pass
        return msg

    def call(self, command, args=None, fds=None, timeout=None):
        msg = json.dumps({"execute": command, **({"arguments": args} if args else {})}).encode()
        if fds:
            self.sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(array.array("i", fds)))])
        else:
            self.sock.sendall(msg)
        reply = self._next_reply(timeout)
        if "error" in reply:
            raise RuntimeError(f"{command}: {reply['error']['desc']}")
        return reply["return"]

    def event_time(self, name, after):
        return next((t for e, t in self.events if e == name and t >= after), None)

    def wait_event(self, name, after, timeout):
        """QEMU's timestamp of the first `name` event at or after `after`, or None."""
        deadline = time.time() + timeout
        while (t := self.event_time(name, after)) is None and time.time() < deadline:
            try:
                self._read(max(0.001, deadline - time.time()))
            except socket.timeout:
                break
        return t


def blocked_in_pipe_write(pid):
    """Whether a QEMU thread is blocked writing into a full pipe (wchan)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if "pipe_write" in f.read():
                    return True
        except FileNotFoundError:
            pass
    return False


def start_guest(qemu, ram, workdir):
    """A QEMU booting the test guest with half its RAM filled, and its QMP client."""
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
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, qmp


@contextlib.contextmanager
def running_guest(qemu, ram, workdir):
    """start_guest's QEMU and QMP client, the QEMU killed on the way out."""
    proc, qmp = start_guest(qemu, ram, workdir)
    try:
        yield proc, qmp
    finally:
        proc.kill()
        proc.wait()


def prepare_background_snapshot(qmp):
    """The migration settings virtsnapd's instant snapshot makes (snapshot_memory.cc:
    events, background-snapshot, libvirt's "unlimited" max-bandwidth), so that the
    probes time the stream the daemon would start."""
    qmp.call("migrate-set-capabilities", {"capabilities": [
        {"capability": "background-snapshot", "state": True}, {"capability": "events", "state": True}]})
    qmp.call("migrate-set-parameters", {"max-bandwidth": (2**63 - 1) // 2**20 * 2**20})


def snapshot_pause(qmp, since, timeout):
    """(STOP time, RESUME time, query-migrate) of the completed background snapshot
    whose commands began at `since`; raises when it did not complete."""
    info = qmp.call("query-migrate")
    if info.get("status") != "completed":
        raise RuntimeError(f"migration {info.get('status')}")
    stop = qmp.event_time("STOP", since - 0.001)
    return stop, qmp.wait_event("RESUME", stop, timeout=timeout), info


def stop_first(qmp, image):
    """Today's order. Returns None, or why the order does not apply."""
    started = time.time()
    qmp.call("getfd", {"fdname": "migrate"}, [image.fileno()])
    qmp.call("stop")
    qmp.call("transaction", {"actions": []})
    qmp.call("migrate", {"uri": "fd:migrate"})
    # QEMU 10 leaves a guest it found stopped paused (7.2 resumes it): that
    # order then has no QEMU-made end of the pause to measure.
    if qmp.wait_event("RESUME", started, timeout=5) is None:
        qmp.call("cont")
        return "QEMU leaves the guest paused"
    return None


def gated(qmp, qemu_pid, image):
    """The gated order, relaying the stream into `image` on a thread. Returns
    None and the relay thread, or why the order does not apply."""
    rd, wr = os.pipe()
    fcntl.fcntl(wr, F_SETPIPE_SZ, PAGE)
    os.write(wr, b"\0" * PAGE)                     # the pipe is full: the gate is shut
    qmp.call("getfd", {"fdname": "migrate"}, [wr])
    os.close(wr)
    qmp.call("migrate", {"uri": "fd:migrate"})
    deadline = time.time() + 600
    while not blocked_in_pipe_write(qemu_pid):
        if time.time() > deadline:
            raise RuntimeError("QEMU's migration never reached the gate")
        time.sleep(0.0005)
    try:
        qmp.call("query-status", timeout=2)
    except socket.timeout:
        os.close(rd)
        return "the monitor does not answer while the stream is held", None
    qmp.call("stop")
    qmp.call("transaction", {"actions": []})
    os.read(rd, PAGE)                               # the filler out: the gate opens

    def copy():
        while chunk := os.read(rd, 1 << 20):
            image.write(chunk)
        os.close(rd)
    relay = threading.Thread(target=copy)
    relay.start()
    return None, relay


def one_snapshot(qemu, ram, order, workdir):
    """(pause ms, QEMU setup-time) of one snapshot, or why `order` does not apply."""
    with running_guest(qemu, ram, workdir) as (proc, qmp):
        prepare_background_snapshot(qmp)
        with open(os.path.join(workdir, "memory.img"), "wb") as image:
            started = time.time()
            relay = None
            if order == "stop-first":
                why = stop_first(qmp, image)
            else:
                why, relay = gated(qmp, proc.pid, image)
            if why:
                return why
            while qmp.call("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
                time.sleep(0.05)
            if relay:
                relay.join()
        stop, resume, info = snapshot_pause(qmp, started, timeout=1)
        return (resume - stop) * 1000, info.get("setup-time")


def main():
    args, version = bl.probe_args(bl.probe_parser(__doc__, reps=3))
    rows = []
    with tempfile.TemporaryDirectory(prefix="gateprobe-") as workdir:
        for ram in args.ram:
            for order in ("stop-first", "gated"):
                runs = [one_snapshot(args.qemu, ram, order, workdir) for _ in range(args.reps)]
                why = next((r for r in runs if isinstance(r, str)), None)
                if why:
                    rows.append([f"{ram} MiB", order, f"n/a: {why}", ""])
                else:
                    pauses = [r[0] for r in runs]
                    rows.append([f"{ram} MiB", order,
                                 f"{bl.median(pauses):.1f} ms [{min(pauses):.1f}-{max(pauses):.1f}]",
                                 ", ".join(str(r[1]) for r in runs) + " ms"])
                bl.log(f"{ram} MiB {order}: {rows[-1][2]}")
    table = bl.md_table(["RAM", "order", "pause (STOP->RESUME), median [min-max]", "QEMU setup-time"], rows)
    bl.write_probe_result("instant-gate", version, f"{version}, {args.reps} reps", table)


if __name__ == "__main__":
    sys.exit(main())
