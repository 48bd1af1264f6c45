#!/usr/bin/python3
"""probe_walk_stop.py - QEMU 10's instant-snapshot pause when `stop` lands during
QEMU's populate walk, on raw QMP (docs/snapshots.md, "Instant snapshots: the pause").

QEMU 10's background-snapshot thread walks guest RAM (one read per page) before it
takes the main lock for its set-up and its own stop. `migrate` sent while the guest
runs, then `stop` once the thread has run for a fraction of the walk's CPU time:
QEMU then finds the guest stopped, so it captures it without resuming it, and the
disks can be switched at leisure before `cont`. Whether `stop` came in time is read
from the event order: our STOP before the MIGRATION "active" event.

One QEMU per RAM size, several snapshots in a row (guest RAM re-collapsed into huge
pages between them, as the daemon does). The first snapshot is QEMU's own stop
("running"), which measures the walk: the thread's CPU time (schedstat) until the
stream's first bytes. Then `--fractions` of it.

usage: probe_walk_stop.py [--qemu BINARY] [--ram MIB ...] [--reps N] [--fractions F ...]
"""
import ctypes
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
from probe_instant_gate import Qmp, prepare_background_snapshot, running_guest  # noqa: E402

SETUP_SECTION = 256 << 10
THREAD_NAMES = ("bg_snapshot", "mig/snapshot")


class OrderedQmp(Qmp):
    """Qmp that also keeps every event's data, in arrival order."""

    def _read(self, timeout=None):
        msg = super()._read(timeout)
        if "event" in msg:
            self.ordered = getattr(self, "ordered", [])
            self.ordered.append((msg["event"], msg.get("data", {}), time.time()))
        return msg


def thread_cpu_ns(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def find_snapshot_thread(pid, before, deadline):
    while time.time() < deadline:
        for tid in os.listdir(f"/proc/{pid}/task"):
            if tid in before:
                continue
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    if f.read().strip() in THREAD_NAMES:
                        return tid
            except FileNotFoundError:
                pass
        time.sleep(0.0001)
    raise RuntimeError("no background-snapshot thread")


def collapse(pid):
    """MADV_COLLAPSE over the largest anonymous rw-p mapping (guest RAM)."""
    best = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if parts[1] != "rw-p" or len(parts) > 5:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if not best or hi - lo > best[1] - best[0]:
                best = (lo, hi)
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open

    class Iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    chunk = 64 << 20
    for lo in range(best[0], best[1], chunk):
        iov = Iovec(lo, min(chunk, best[1] - lo))
        libc.syscall(440, pidfd, ctypes.byref(iov), 1, 25, 0)  # process_madvise MADV_COLLAPSE
    os.close(pidfd)


def snapshot(proc, qmp, workdir, stop_after_ns):
    """One background snapshot. stop_after_ns None: QEMU's own stop. Returns a dict."""
    qmp.ordered = []
    path = os.path.join(workdir, "memory.img")
    out = {}
    with open(path, "wb") as image:
        qmp.call("getfd", {"fdname": "migrate"}, [image.fileno()])
        before = set(os.listdir(f"/proc/{proc.pid}/task"))
        t0 = time.time()
        qmp.call("migrate", {"uri": "fd:migrate"})
        tid = find_snapshot_thread(proc.pid, before, t0 + 10)
        samples = []
        if stop_after_ns is None:
            while os.fstat(image.fileno()).st_size == 0:
                samples.append(thread_cpu_ns(proc.pid, tid))
                time.sleep(0.0001)
            out["walk_ns"] = samples[-1] if samples else 0
            out["walk_wall_ms"] = (time.time() - t0) * 1000
        else:
            while (cpu := thread_cpu_ns(proc.pid, tid)) < stop_after_ns:
                if os.fstat(image.fileno()).st_size > 0:
                    break
                time.sleep(0.0001)
            out["cpu_at_stop_ms"] = round(cpu / 1e6, 2)
            steps = {"migrate": t0}
            steps["stop sent"] = time.time()
            qmp.call("stop")
            steps["stop"] = time.time()
            names = [(e, d.get("status")) for e, d, _ in qmp.ordered]
            first_stop = next((i for i, (e, _) in enumerate(names) if e == "STOP"), None)
            active = next((i for i, (e, s) in enumerate(names) if e == "MIGRATION" and s == "active"), None)
            out["won"] = first_stop is not None and (active is None or first_stop < active)
            qmp.call("transaction", {"actions": []})
            steps["transaction"] = time.time()
            while os.fstat(image.fileno()).st_size == 0:
                cpu = thread_cpu_ns(proc.pid, tid)
                time.sleep(0.0001)
            out["walk_ns"] = cpu
            steps["stream"] = time.time()
            while os.fstat(image.fileno()).st_size < SETUP_SECTION:
                time.sleep(0.0002)
            steps["RAM"] = time.time()
            if qmp.call("query-status")["status"] == "paused":
                qmp.call("cont")
            steps["cont"] = time.time()
            out["steps"] = ", ".join(f"{k} +{(v - t0) * 1000:.1f}" for k, v in steps.items())
        while qmp.call("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
            time.sleep(0.02)
        info = qmp.call("query-migrate")
    qmp.wait_event("RESUME", t0 - 1, timeout=2)
    stops = [ts for e, d, ts in qmp.ordered if e == "STOP"]
    resumes = [ts for e, d, ts in qmp.ordered if e == "RESUME"]
    ev = [(e, t) for e, t in qmp.events if t >= t0 - 0.001]
    st = next(t for e, t in ev if e == "STOP")
    rs = next(t for e, t in ev if e == "RESUME" and t >= st)
    out["pause_ms"] = (rs - st) * 1000
    out["events"] = [e + (":" + d["status"] if e == "MIGRATION" else "") for e, d, _ in qmp.ordered]
    out["setup_ms"] = info.get("setup-time")
    out["n_stop"], out["n_resume"] = len(stops), len(resumes)
    os.unlink(path)
    return out


def main():
    ap = bl.probe_parser(__doc__, reps=4)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.8, 0.9])
    args, version = bl.probe_args(ap)
    with tempfile.TemporaryDirectory(prefix="walkstop-", dir="/var/tmp") as workdir:
        for ram in args.ram:
            with running_guest(args.qemu, ram, workdir) as (proc, qmp):
                qmp.__class__ = OrderedQmp
                time.sleep(2)
                prepare_background_snapshot(qmp)
                walks = []
                for i in range(2):
                    r = snapshot(proc, qmp, workdir, None)
                    walks.append(r["walk_ns"])
                    bl.log(f"{ram} MiB running: {r}")
                    collapse(proc.pid)
                    time.sleep(1)
                walk = walks[-1]
                for f in args.fractions:
                    for _ in range(args.reps):
                        r = snapshot(proc, qmp, workdir, int(walk * f))
                        bl.log(f"{ram} MiB walk {walk/1e6:.1f} ms x {f}: {r}")
                        walk = r["walk_ns"]
                        collapse(proc.pid)
                        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
