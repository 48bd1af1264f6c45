#!/usr/bin/python3
"""test_crash_recovery_instant - virtsnapd killed (VIRTSNAP_TEST_CRASH_AT, _exit(137)
as SIGKILL would) at every step of an instant snapshot (plain LIVE with memory,
which takes the instant method), then restarted without the hook.

On QEMU 7.2 the instant method uses the gated order (docs/snapshots.md): `migrate`
into a full pipe, the switch, then the gate opens and virtsnap-relay writes the
stream. Its points between journal records:
  gate-shut      migrate sent, QEMU held at the gate, guest running, no switch:
                 the relay opens the gate when the daemon is gone; recovery drops
                 the snapshot (no disk was switched) and its memory file;
  gate-switched  guest stopped, disks switched, gate still shut: the relay opens
                 it, QEMU captures and resumes; recovery finishes the snapshot;
  gate-open      the relay writing while the daemon is gone: the same.
On QEMUs without the gate (QEMU 10) those points are never reached and noted.

After each restart: the guest runs, no journal is left, every image passes
qemu-img check, no unreferenced file, the snapshot list matches the files (a
kept snapshot has a complete memory image), dumpxml's sources are what QEMU
has open, no virtsnap-relay is left; and QEMU can still take the next instant
snapshot (a broken background snapshot would leave QEMU 7.2 unable to)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
cc = vstest.CrashCheck(env, t)

env.define_guest("ci1", disks=(("vda", 16), ("vdb", 16)), heartbeat_ms=50)
env.virsh_ok("start ci1", "start", "ci1")
t.ok(env.wait_serial("ci1", r"VSGUEST ready", timeout=180) is not None, "ci1 ready", env.serial_text("ci1")[-1500:])


def live_args(name):
    return (name, "--live", "--memspec", "file=%s/%s.mem,snapshot=external" % (env.images, name),
            "--diskspec", "vda,snapshot=external", "--diskspec", "vdb,snapshot=external")


def relays_left():
    r = subprocess.run(["pgrep", "-f", "virtsnap-relay"], capture_output=True, text=True)
    return r.stdout.split()


# (step, snapshot kept?)
STEPS = [("pause", False), ("memory", False), ("gate-shut", False), ("gate-switched", True), ("gate-open", True),
         ("memory:done", True), ("commit", True)]
for i, (step, kept) in enumerate(STEPS):
    name = "ci%d" % (i + 2)
    label = "instant killed at %s" % step
    killed = cc.run_with_crash(label, step, "snapshot-create-as", "ci1", *live_args(name))
    if not killed and step.startswith("gate-"):
        t.skip("%s: the rest" % label, "this QEMU takes instant snapshots without the gate")
        continue
    t.ok(killed, "%s: daemon killed at the step" % label, env.daemon.log_text()[-1500:])
    cc.check(label, "ci1", "running", name, expect_exists=kept)
    cc.guest_progresses(label, "ci1")
    t.eq(relays_left(), [], "%s: no relay left" % label)
    # QEMU is not poisoned: the next instant snapshot works.
    after = name + "-next"
    r = env.virsh("snapshot-create-as", "ci1", *live_args(after), timeout=600)
    t.ok(r.ok, "%s: the next instant snapshot succeeds" % label, r)
    cc.check(label + ", next", "ci1", "running", after, expect_exists=True)

t.finish()
