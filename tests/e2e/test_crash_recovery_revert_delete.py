#!/usr/bin/python3
"""test_crash_recovery_revert_delete - virtsnapd killed (VIRTSNAP_TEST_CRASH_AT,
_exit(137) as SIGKILL would) at every journalled step of snapshot revert and
delete, then restarted without the hook: internal revert of a running and of a
shut-off domain (and of a running domain to a shut-off snapshot), external
disk-only and memory revert, internal delete running and shut off, external
delete with an active commit (the overlay is the running top) and of a middle
snapshot (commit below the top).

After each restart (vstest.CrashCheck.check): the domain is as before the
operation or as after it - never in between - with no journal left, every image
clean by qemu-img check, no file in the images directory that nothing
references, snapshot list and tags consistent with the files, dumpxml sources
what QEMU has open; the guest runs on where it runs. A crash point before the
commit record must leave "before", from it on "after"."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
cc = vstest.CrashCheck(env, t)
with open(os.path.join(env.root, "etc", "virtsnapd.conf"), "a") as conf:
    conf.write("log_level = 2\n")  # recovery's steps in the log of every restart


def boot(name):
    env.virsh_ok("start " + name, "start", name)
    t.ok(env.wait_serial(name, r"VSGUEST ready", timeout=180) is not None, name + " ready",
         env.serial_text(name)[-1500:])


def reason(name):
    return env.virsh("domstate", "--reason", name).out.strip()


def counter(path):
    n, consistent, raw = env.read_counter(path)
    return n if consistent else None


def make_current(dom, name):
    if cc.current(dom) != name:
        env.virsh_ok("%s: %s made current" % (dom, name), "snapshot-current", dom, name)


def crash(label, step, *args):
    killed = cc.run_with_crash(label, step, *args)
    t.ok(killed, "%s: daemon killed at the step" % label, env.daemon.log_text()[-1500:])
    return killed


def after_revert(label, dom, target, committed, state, expect_after):
    """Common checks of one revert crash: `expect_after()` is True when the
    domain shows the reverted state."""
    cc.check(label, dom, state, branches=True, known=left_behind)
    t.eq(expect_after(), committed, "%s: %s" % (label, "after the revert" if committed else "as before the revert"))
    if committed:
        t.eq(cc.current(dom), target, "%s: %s is current" % (label, target))
    if state == "running":
        cc.guest_progresses(label, dom)


# Tops a committed external revert leaves behind: the branch the domain left
# stays (nothing else refers to it), so it counts as known.
left_behind = set()

env.define_guest("r1", disks=(("vda", 16), ("vdb", 16)), memory_mib=128, heartbeat_ms=50)
boot("r1")

# ---- internal revert of a running domain: QEMU's snapshot-load ----
env.virsh_ok("r1: internal snapshot i1", "snapshot-create-as", "r1", "i1")
started = time.time()
env.virsh_ok("r1: internal snapshot i0 (the snapshot-save an undo snapshot would cost)",
             "snapshot-create-as", "r1", "i0")
t.note("internal snapshot of the running guest (128 MiB, 2 disks): %.2f s" % (time.time() - started))
for step, committed in (("begin", False), ("pause", False), ("snapshot-load", False), ("commit", True),
                        ("end", True)):
    label = "internal revert running, killed at %s" % step
    make_current("r1", "i0")
    env.virsh("suspend", "r1")
    env.virsh("resume", "r1")  # running (unpaused), not "from snapshot", before each revert
    if crash(label, step, "snapshot-revert", "r1", "i1"):
        after_revert(label, "r1", "i1", committed, "running",
                     lambda: reason("r1") == "running (from snapshot)" and cc.current("r1") == "i1")

# ---- internal revert of a running domain to a shut-off snapshot (commit, then QEMU stopped) ----
time.sleep(3)  # the guest writes its counter records (i1 may predate the first)
env.virsh_ok("r1: suspend", "suspend", "r1")  # QEMU flushes: the disks read consistently
env.virsh_ok("r1: destroy", "destroy", "r1")
env.virsh_ok("r1: shut-off internal snapshot o1", "snapshot-create-as", "r1", "o1")
n_o1, _, raw_o1 = env.read_counter(env.disk_path("r1", "vda"))
t.note("o1: " + raw_o1.strip())
for step in ("commit", "stop-qemu"):
    label = "internal revert of a running domain to o1, killed at %s" % step
    boot("r1")
    if crash(label, step, "snapshot-revert", "r1", "o1"):
        after_revert(label, "r1", "o1", True, "shut off",
                     lambda: counter(env.disk_path("r1", "vda")) == n_o1)

# ---- internal revert of a shut-off domain: qemu-img snapshot -a behind undo tags ----
boot("r1")
time.sleep(3)  # the guest's disk counter moves on
env.virsh_ok("r1: suspend", "suspend", "r1")
env.virsh_ok("r1: destroy", "destroy", "r1")
n_now = counter(env.disk_path("r1", "vda"))
t.ok(n_now is not None and n_o1 is not None and n_now > n_o1, "r1: disks moved on since o1 (%r > %r)" % (n_now, n_o1),
     raw_o1)
for step, committed in (("save-undo#2", False), ("apply", False), ("apply#2", False), ("commit", True),
                        ("end", True)):
    label = "internal revert shut off, killed at %s" % step
    make_current("r1", "i0")
    if crash(label, step, "snapshot-revert", "r1", "o1"):
        after_revert(label, "r1", "o1", committed, "shut off",
                     lambda: counter(env.disk_path("r1", "vda")) == n_o1 and cc.current("r1") == "o1")

# ---- external disk-only revert of a running domain, booted again (--running) ----
boot("r1")
env.virsh_ok("r1: suspend", "suspend", "r1")
env.virsh_ok("r1: disk-only snapshot d1", "snapshot-create-as", "r1", "d1", "--disk-only", "--atomic")
env.virsh_ok("r1: resume", "resume", "r1")
for step, committed in (("begin", False), ("create-overlay", False), ("create-overlay:done#2", False),
                        ("commit", True), ("stop-qemu", True), ("start-qemu", True), ("end", True)):
    label = "external disk-only revert, killed at %s" % step
    make_current("r1", "i0")
    before = cc.sources("r1")
    left_behind.update(before.values())
    if crash(label, step, "snapshot-revert", "r1", "d1", "--running"):
        if committed:
            t.ok(env.wait_serial("r1", r"VSGUEST ready", timeout=180) is not None, label + ": boots")
        after_revert(label, "r1", "d1", committed, "running",
                     lambda: all(".d1-revert" in p for p in cc.sources("r1").values()) and
                     cc.sources("r1") != before)

# ---- external memory revert ----
mem = os.path.join(env.images, "r1-m1.mem")
env.virsh_ok("r1: memory snapshot m1", "snapshot-create-as", "r1", "m1", "--memspec", "file=" + mem,
             "--diskspec", "vda,snapshot=external", "--diskspec", "vdb,snapshot=external")
for step, committed in (("create-overlay", False), ("create-overlay#2", False), ("commit", True),
                        ("stop-qemu", True), ("start-qemu", True), ("end", True)):
    label = "external memory revert, killed at %s" % step
    make_current("r1", "i0")
    before = cc.sources("r1")
    left_behind.update(before.values())
    if crash(label, step, "snapshot-revert", "r1", "m1"):
        after_revert(label, "r1", "m1", committed, "running",
                     lambda: all(".m1-revert" in p for p in cc.sources("r1").values()) and
                     reason("r1") == "running (from snapshot)")
env.virsh("destroy", "r1")
env.virsh_ok("r1: undefine", "undefine", "r1", "--snapshots-metadata")
for f in os.listdir(env.images):  # the images dir is checked as a whole below
    if f.startswith("r1-"):
        os.unlink(os.path.join(env.images, f))

# ---- deletes, on a domain of their own ----
left_behind = set()
env.define_guest("r2", disks=(("vda", 16), ("vdb", 16)), memory_mib=128, heartbeat_ms=50)
boot("r2")


def delete_cases(what, prefix, steps, state, *create_args, above=False, cleanup=False):
    """One snapshot made (with `create_args`, and one above it when `above`) and
    deleted with a crash per step; committed steps must leave it deleted."""
    for i, (step, committed) in enumerate(steps):
        name = "%s%d" % (prefix, i)
        for n in (name, name + "-top") if above else (name,):
            env.virsh_ok("r2: snapshot " + n, "snapshot-create-as", "r2", n, *create_args)
        label = "%s, killed at %s" % (what, step)
        if crash(label, step, "snapshot-delete", "r2", name):
            cc.check(label, "r2", state, name=name, expect_exists=not committed, branches=True)
            if state == "running":
                cc.guest_progresses(label, "r2")
        if cleanup and name in cc.snapshots("r2"):
            env.virsh_ok("r2: delete " + name, "snapshot-delete", "r2", name)


DISK_ONLY = ("--disk-only", "--atomic")
# internal, running: QEMU's snapshot-delete job
delete_cases("internal delete running", "di",
             (("begin", False), ("commit", True), ("snapshot-delete", True), ("end", True)), "running", cleanup=True)
# external, active commit: the snapshot's overlays are the running tops
delete_cases("external delete, active commit", "ea",
             (("commit", True), ("block-commit", True), ("pivot", True), ("pivot:done", True),
              ("block-commit#2", True), ("unlink", True), ("end", True)), "running", *DISK_ONLY)
# external, middle snapshot: its overlays are below the running tops
delete_cases("external delete of a middle snapshot", "em",
             (("begin", False), ("commit", True), ("block-commit", True), ("block-commit:done", True),
              ("unlink#2", True), ("end", True)), "running", *DISK_ONLY, above=True)
# internal, shut off: qemu-img snapshot -d
env.virsh_ok("r2: destroy", "destroy", "r2")
delete_cases("internal delete shut off", "do",
             (("begin", False), ("commit", True), ("qemu-img-delete#2", True)), "shut off", cleanup=True)

os.unlink(env.serial_log("r2"))  # QEMU truncates it anyway
boot("r2")
t.finish()
