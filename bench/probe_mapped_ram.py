#!/usr/bin/python3
"""probe_mapped_ram.py - how fast a stopped guest's memory reaches a file:
QEMU's plain migration stream (what virtsnapd and libvirt 9.0 write) against
the mapped-ram layout, alone or with multifd channels, optionally direct-io
(what libvirt 11's "sparse" save image format uses). No daemon: one QEMU
booting the test guest, driven over QMP (docs/performance.md, "mapped-ram and
multifd").

Each method writes the same guest state (the guest stays stopped; it runs one
second between methods, because QEMU will not migrate out of "postmigrate"):

  plain       getfd + migrate fd:          the stream at the fd's offset
  mr          mapped-ram                   add-fd + migrate file:/dev/fdset/N,offset=...
  mrN         mapped-ram + multifd, N channels
  mrNd        the same with direct-io (the fdset gets a second, O_DIRECT fd)

Rate = bytes allocated in the file / (stream + fsync): the time until the
memory is on the disk, as both daemons count a snapshot's memory complete.
The file starts with a 64 KiB header as a save image does.

usage: probe_mapped_ram.py [--qemu BINARY] [--ram MIB ...] [--reps N] [--methods plain,mr2,...]
The table goes to bench/results/mapped-ram-<QEMU version>.md.
"""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
from bench_snapshot import dd_rate  # noqa: E402
from probe_instant_gate import running_guest  # noqa: E402

HEADER = 92 + 65536  # a save image's header and XML padding


def wait_completed(qmp):
    while True:
        info = qmp.call("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            if info["status"] != "completed":
                raise RuntimeError(f"migration {info['status']}: {info.get('error-desc', '')}")
            return info
        time.sleep(0.002)


def set_caps(qmp, **caps):
    qmp.call("migrate-set-capabilities",
             {"capabilities": [{"capability": k.replace("_", "-"), "state": v} for k, v in caps.items()]})


def one_write(qmp, method, path):
    """(stream s, fsync s, allocated bytes) of one method into `path`."""
    if os.path.exists(path):
        os.unlink(path)
    os.sync()
    time.sleep(3)  # let the previous file's writeback settle
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    extra = []
    fdset = None
    try:
        os.write(fd, b"\0" * HEADER)
        if method == "plain":
            set_caps(qmp, mapped_ram=False, multifd=False)
            qmp.call("getfd", {"fdname": "migrate"}, [fd])
            uri = "fd:migrate"
        else:
            spec = method[2:]
            direct = spec.endswith("d")
            channels = int(spec.rstrip("d") or 0)
            set_caps(qmp, mapped_ram=True, multifd=channels > 0)
            params = {"direct-io": direct}
            if channels:
                params["multifd-channels"] = channels
            qmp.call("migrate-set-parameters", params)
            fdset = qmp.call("add-fd", {}, [fd])["fdset-id"]
            if direct:
                dfd = os.open(path, os.O_WRONLY | os.O_DIRECT)
                extra.append(dfd)
                qmp.call("add-fd", {"fdset-id": fdset}, [dfd])
            uri = f"file:/dev/fdset/{fdset},offset={HEADER:#x}"
        started = time.time()
        qmp.call("migrate", {"uri": uri})
        wait_completed(qmp)
        streamed = time.time()
        os.fsync(fd)
        flushed = time.time()
        return streamed - started, flushed - streamed, os.fstat(fd).st_blocks * 512
    finally:
        if fdset is not None:
            qmp.call("remove-fd", {"fdset-id": fdset})
        for x in [fd, *extra]:
            os.close(x)
        if method != "plain":
            qmp.call("migrate-set-parameters", {"direct-io": False})


def main():
    ap = bl.probe_parser(__doc__, reps=2)
    ap.add_argument("--methods", default="plain,mr,mr2,mr2d")
    args, version = bl.probe_args(ap)
    methods = args.methods.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="mrprobe-", dir="/var/tmp") as workdir:
        disk = dd_rate(workdir)
        direct = dd_rate(workdir, direct=True)
        for ram in args.ram:
            with running_guest(args.qemu, ram, workdir) as (proc, qmp):
                caps = {c["capability"] for c in qmp.call("query-migrate-capabilities")}
                if "mapped-ram" not in caps:
                    print(f"{version}: no mapped-ram capability; nothing to compare")
                    return 0
                set_caps(qmp, events=True)
                qmp.call("migrate-set-parameters", {"max-bandwidth": (2**63 - 1) // 2**20 * 2**20})
                qmp.call("stop")
                samples = {m: [] for m in methods}
                for rep in range(args.reps):
                    for m in methods:
                        if rep or m != methods[0]:
                            qmp.call("cont")  # out of "postmigrate"
                            time.sleep(1)
                            qmp.call("stop")
                        stream, flush, size = one_write(qmp, m, os.path.join(workdir, "memory.img"))
                        rate = size / (1 << 20) / (stream + flush)
                        samples[m].append(rate)
                        bl.log(f"{ram} MiB {m}: stream {stream * 1000:.0f} ms, fsync {flush * 1000:.0f} ms, "
                               f"{size >> 20} MiB allocated, {rate:.0f} MiB/s")
                for m in methods:
                    rates = samples[m]
                    rows.append([f"{ram} MiB", m, f"{bl.median(rates):.0f}",
                                 f"{bl.median(rates) / disk:.2f}" if disk else "—",
                                 f"{bl.median(rates) / direct:.2f}" if direct else "—",
                                 ", ".join(f"{r:.0f}" for r in rates)])
    table = bl.md_table(["RAM", "method", "MiB/s to disk, median", "vs dd", "vs dd O_DIRECT", "samples"], rows)
    m = bl.machine_summary()
    machine = f"{m['cores']} cores, {m['mem_gib']} GiB, kernel {m['kernel']}"
    machine += f", dd {disk:.0f} MiB/s (fdatasync)" if disk else ""
    machine += f", {direct:.0f} MiB/s (O_DIRECT)" if direct else ""
    bl.write_probe_result("mapped-ram", version, f"{version}, {args.reps} reps; {machine}", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
