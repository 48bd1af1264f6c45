#!/usr/bin/python3
"""test_crash_recovery - virtsnapd killed (VIRTSNAP_TEST_CRASH_AT, _exit(137) as
SIGKILL would) at every journalled step of a running disk-only snapshot, an
external snapshot with memory and an internal running snapshot, then restarted
without the hook. After each restart: the guest runs (or stays paused when it
was), no journal is left, every image passes qemu-img check, no file in the
images directory that nothing references, the snapshot list matches the files
(committed snapshots exist with their files, the others left nothing), and the
disk sources in dumpxml are the images QEMU actually has open. The memory
snapshot runs again with its image written by virtsnap-relay with O_DIRECT
(memory_image_direct_io = "always"), also with the daemon killed while the
relay writes: no relay outlives the recovery."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
cc = vstest.CrashCheck(env, t)
sources, check = cc.sources, cc.check


def crash_and_restart(label, dom, args, step):
    return cc.run_with_crash(label, step, "snapshot-create-as", dom, *args)


# Some RAM filled, so that a memory image takes long enough to be caught mid-stream.
env.define_guest("c1", disks=(("vda", 16), ("vdb", 16)), heartbeat_ms=50, fill_mib=96)
env.virsh_ok("start c1", "start", "c1")
t.ok(env.wait_serial("c1", r"VSGUEST ready", timeout=180) is not None, "c1 ready", env.serial_text("c1")[-1500:])


guest_progresses = cc.guest_progresses


def memory_args(name):
    return (name, "--memspec", "file=%s/%s.mem,snapshot=external" % (env.images, name),
            "--diskspec", "vda,snapshot=external", "--diskspec", "vdb,snapshot=external")


# (mode, args builder, [(step, committed?)])
DISK_ONLY = ["begin", "create-overlay", "create-overlay:done#2", "blockdev-add", "blockdev-add#4",
             "transaction", "commit", "end"]
# The memory image is flushed after the switch and the resume ("memory-flush", a crash
# point, not a record): its "memory" done record follows the transaction, and from then
# on the snapshot exists (recovery keeps what the switched disks and the image hold).
MEMORY = ["pause", "memory", "create-overlay#2", "blockdev-add#3", "transaction", "memory-flush", "memory:done",
          "commit"]
INTERNAL = ["pause", "snapshot-save", "commit"]
COMMITTED = {"commit", "end"}
COMMITTED_BY_MODE = {"memory": COMMITTED | {"memory:done"}}

i = 0
for mode, steps in (("disk-only", DISK_ONLY), ("memory", MEMORY), ("internal", INTERNAL)):
    for step in steps:
        i += 1
        name = "c%d" % i
        if mode == "disk-only":
            args = (name, "--disk-only", "--atomic")
        elif mode == "memory":
            args = memory_args(name)
        else:
            args = (name,)
        label = "%s killed at %s" % (mode, step)
        killed = crash_and_restart(label, "c1", args, step)
        t.ok(killed, "%s: daemon killed at the step" % label, env.daemon.log_text()[-1500:])
        check(label, "c1", "running", name, expect_exists=step in COMMITTED_BY_MODE.get(mode, COMMITTED))
        guest_progresses(label, "c1")

# the memory image through virtsnap-relay with O_DIRECT
conf = os.path.join(env.root, "etc", "virtsnapd.conf")
os.makedirs(os.path.dirname(conf), exist_ok=True)
with open(conf, "w") as f:
    f.write('memory_image_direct_io = "always"\n')
for step in ("memory", "memory-flush", "memory:done", "commit"):
    i += 1
    name = "c%d" % i
    label = "memory through the relay, killed at %s" % step
    killed = crash_and_restart(label, "c1", memory_args(name), step)
    t.ok(killed, "%s: daemon killed at the step" % label, env.daemon.log_text()[-1500:])
    check(label, "c1", "running", name, expect_exists=step in COMMITTED_BY_MODE["memory"])
    guest_progresses(label, "c1")
    t.eq(vstest.relays_holding(env.images), [], "%s: no virtsnap-relay left" % label)

i += 1
name = "c%d" % i
label = "memory through the relay, daemon killed while the relay writes"
mem = os.path.join(env.images, name + ".mem")
run = threading.Thread(target=env.virsh, args=("snapshot-create-as", "c1") + memory_args(name))
run.start()
deadline, seen = time.time() + 120, False
while not seen and run.is_alive() and time.time() < deadline:
    seen = bool(vstest.relays_holding(mem, wait=0))
    if not seen:
        time.sleep(0.002)
if seen:
    env.daemon.kill9()
run.join()
if not seen:
    t.skip(label, "the image was written before a relay was seen")
    env.virsh("snapshot-delete", "c1", name)
else:
    t.ok(env.daemon.start(), "%s: daemon restarts" % label, env.daemon.log_text()[-3000:])
    check(label, "c1", "running", name, expect_exists=False)
    guest_progresses(label, "c1")
    t.eq(vstest.relays_holding(env.images, wait=30), [], "%s: no virtsnap-relay left" % label)
os.unlink(conf)
env.daemon.stop()
t.ok(env.daemon.start(), "daemon restarts with the default configuration", env.daemon.log_text()[-3000:])

# a domain the user paused stays paused (no pause intent: the job did not pause it)
env.virsh_ok("suspend c1", "suspend", "c1")
for step in ("snapshot-save", "commit"):
    i += 1
    label = "paused, internal killed at %s" % step
    killed = crash_and_restart(label, "c1", ("c%d" % i,), step)
    t.ok(killed, "%s: daemon killed at the step" % label)
    check(label, "c1", "paused", "c%d" % i, expect_exists=step == "commit")
env.virsh_ok("resume c1", "resume", "c1")
guest_progresses("after the paused cases", "c1")

# shut-off domain: external and internal
env.virsh("destroy", "c1")
for mode, steps in (("shut off disk-only", ["create-overlay#2", "commit"]), ("shut off internal", ["qemu-img-snapshot#2", "commit"])):
    for step in steps:
        i += 1
        name = "c%d" % i
        args = (name, "--disk-only") if "disk-only" in mode else (name,)
        label = "%s killed at %s" % (mode, step)
        killed = crash_and_restart(label, "c1", args, step)
        t.ok(killed, "%s: daemon killed at the step" % label)
        check(label, "c1", "shut off", name, expect_exists=step == "commit")
        pers = sources("c1", inactive=True)
        t.ok(all(os.path.exists(p) for p in pers.values()), "%s: the definition's images exist" % label, pers)

os.unlink(env.serial_log("c1"))  # QEMU truncates it anyway
env.virsh_ok("boots after all", "start", "c1")
t.ok(env.wait_serial("c1", r"VSGUEST ready", timeout=180) is not None, "c1 boots from the recovered chain",
     env.serial_text("c1")[-1500:])
t.finish()
