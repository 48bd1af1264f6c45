#!/usr/bin/python3
"""probe_stop_first.py - where the instant snapshot's stop-first pause goes, on raw QMP
(docs/performance.md, "QEMU 10.0"). One QEMU booting the test guest per sample.

  stop-first  what virtsnapd does where the gate is unsafe: stop, an empty transaction,
              migrate (background-snapshot) to a file, `cont` once the image holds more
              than QEMU's set-up section. Each step's reply is timestamped.
  running     migrate (background-snapshot) while the guest runs: QEMU stops and resumes
              the guest itself. Its STOP -> RESUME is the floor no order can go below,
              but it is not a snapshot the disks can join: QEMU picks the instant.

Pause = QEMU's STOP -> RESUME event timestamps; "setup-time" is query-migrate's.

usage: probe_stop_first.py [--qemu BINARY] [--ram MIB ...] [--reps N]
"""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
from probe_instant_gate import prepare_background_snapshot, running_guest, snapshot_pause  # noqa: E402

SETUP_SECTION = 256 << 10  # as snapshot_memory.cc's resume_once_ram_streams


def one_sample(qemu, ram, order, workdir):
    """(pause ms, setup-time ms, {step: ms after the first command})."""
    with running_guest(qemu, ram, workdir) as (proc, qmp):
        time.sleep(2)
        prepare_background_snapshot(qmp)
        with open(os.path.join(workdir, "memory.img"), "wb") as image:
            qmp.call("getfd", {"fdname": "migrate"}, [image.fileno()])
            steps = {}
            start = time.time()
            if order == "stop-first":
                qmp.call("stop")
                steps["stop"] = time.time()
                qmp.call("transaction", {"actions": []})
                steps["transaction"] = time.time()
                qmp.call("migrate", {"uri": "fd:migrate"})
                steps["migrate"] = time.time()
                while os.fstat(image.fileno()).st_size < SETUP_SECTION:
                    time.sleep(0.0005)
                steps["RAM in the image"] = time.time()
                qmp.call("cont")
                steps["cont"] = time.time()
            else:
                qmp.call("migrate", {"uri": "fd:migrate"})
                steps["migrate"] = time.time()
            while qmp.call("query-migrate").get("status") not in ("completed", "failed", "cancelled"):
                time.sleep(0.02)
        stop, resume, info = snapshot_pause(qmp, start, timeout=2)
        steps["STOP event"], steps["RESUME event"] = stop, resume
        return (resume - stop) * 1000, info.get("setup-time"), {k: (v - start) * 1000 for k, v in steps.items()}


def main():
    args, version = bl.probe_args(bl.probe_parser(__doc__, reps=3))
    rows = []
    with tempfile.TemporaryDirectory(prefix="stopfirst-", dir="/var/tmp") as workdir:
        for ram in args.ram:
            for order in ("stop-first", "running"):
                runs = [one_sample(args.qemu, ram, order, workdir) for _ in range(args.reps)]
                for pause, setup, steps in runs:
                    bl.log(f"{ram} MiB {order}: pause {pause:.1f} ms, setup-time {setup} ms, " +
                           ", ".join(f"{k} +{v:.1f}" for k, v in steps.items()))
                pauses = [r[0] for r in runs]
                steps = runs[[r[0] for r in runs].index(sorted(pauses)[len(pauses) // 2])][2]
                rows.append([f"{ram} MiB", order, f"{bl.median(pauses):.1f} [{min(pauses):.1f}-{max(pauses):.1f}]",
                             ", ".join(str(r[1]) for r in runs),
                             "; ".join(f"{k} +{v:.1f}" for k, v in steps.items())])
    table = bl.md_table(["RAM", "order", "pause ms, median [min-max]", "setup-time ms",
                         "steps of the median sample, ms after the first command"], rows)
    bl.write_probe_result("stop-first", version, f"{version}, {args.reps} reps", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
