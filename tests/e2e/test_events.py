#!/usr/bin/python3
"""test_events - block-job events from virtsnapd as libvirt sends them: while
stock `virsh snapshot-delete` removes external snapshots of a running guest,
a python-libvirt event loop receives VIR_DOMAIN_EVENT_ID_BLOCK_JOB (disk by
image path) and VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 (disk by target) for the
block commits: COMMIT/COMPLETED for an overlay below the top, then
ACTIVE_COMMIT READY on the overlay and COMPLETED on the base after the pivot
(libvirt's qemuBlockJobEmitEvents; blockcommit-active-pivot.txt). `virsh
event` prints the same events."""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
import libvirt  # noqa: E402

libvirt.virEventRegisterDefaultImpl()


def loop():
    while True:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()

conn = env.connect()
lock = threading.Lock()
events = []  # (registration, domain, path or target, type, status)


def on_block_job(c, dom, path, typ, status, opaque):
    with lock:
        events.append((opaque, dom.name(), path, typ, status))


cb1 = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB, on_block_job, "path")
cb2 = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, on_block_job, "dev")


def wait_events(n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with lock:
            if len(events) >= n:
                return list(events)
        time.sleep(0.1)
    with lock:
        return list(events)


def take():
    with lock:
        out = list(events)
        events.clear()
    return out


# ---- the guest and two external snapshots: running chain  O_b -> O_a -> base ----
env.define_guest("e1")
env.virsh_ok("start e1", "start", "e1")
t.ok(env.wait_serial("e1", r"VSGUEST ready") is not None, "e1 boots", env.serial_text("e1")[-2000:])
base = env.disk_path("e1", "vda")
env.virsh_ok("snapshot a (disk only)", "snapshot-create-as", "e1", "a", "--disk-only")
overlay_a = env.disk_path("e1", "vda")
env.virsh_ok("snapshot b (disk only)", "snapshot-create-as", "e1", "b", "--disk-only")
overlay_b = env.disk_path("e1", "vda")
t.ok(len({base, overlay_a, overlay_b}) == 3, "each snapshot put a new overlay on top", (base, overlay_a, overlay_b))
time.sleep(0.5)
t.eq(take(), [], "creating snapshots runs no block job")

# virsh's own listener, for the same events.
virsh_event = subprocess.Popen(["virsh", "-c", env.uri(), "event", "--all", "--loop", "--timeout", "120"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(1.0)  # let it register before the first job starts

COMMIT = libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT
ACTIVE = libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT
READY, DONE = libvirt.VIR_DOMAIN_BLOCK_JOB_READY, libvirt.VIR_DOMAIN_BLOCK_JOB_COMPLETED


def split(got):
    return ([(p, ty, st) for (k, _, p, ty, st) in got if k == "path"],
            [(p, ty, st) for (k, _, p, ty, st) in got if k == "dev"])


# ---- a: its overlay O_a is below the top: a plain commit of O_a into base ----
env.virsh_ok("delete a (overlay below the top of the running chain)", "snapshot-delete", "e1", "a")
paths, devs = split(wait_events(2))
take()
t.eq(paths, [(overlay_b, COMMIT, DONE)], "commit below the top: BLOCK_JOB COMMIT COMPLETED naming the disk's top")
t.eq(devs, [("vda", COMMIT, DONE)], "commit below the top: BLOCK_JOB_2 COMMIT COMPLETED for vda")
t.eq(env.domain_state("e1"), "running", "the guest keeps running")

# ---- b: its overlay O_b is the top: active commit, ready, pivot onto base ----
env.virsh_ok("delete b (overlay on top of the running chain)", "snapshot-delete", "e1", "b")
paths, devs = split(wait_events(4))
take()
t.eq(paths, [(overlay_b, ACTIVE, READY), (base, ACTIVE, DONE)],
     "active commit: BLOCK_JOB READY on the overlay, then COMPLETED on the base it pivoted to")
t.eq(devs, [("vda", ACTIVE, READY), ("vda", ACTIVE, DONE)], "active commit: BLOCK_JOB_2 READY, then COMPLETED")
t.eq(env.disk_path("e1", "vda"), base, "the disk runs on the base image again")
t.eq(env.domain_state("e1"), "running", "the guest keeps running after the pivot")

# ---- a registration filtered to another domain gets nothing ----
env.define_guest("e2")
cb3 = conn.domainEventRegisterAny(conn.lookupByName("e2"), libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, on_block_job,
                                  "other")
env.virsh_ok("snapshot c", "snapshot-create-as", "e1", "c", "--disk-only")
env.virsh_ok("delete c", "snapshot-delete", "e1", "c")
got = wait_events(4)
time.sleep(1.0)
got = take()
t.ok(len([e for e in got if e[0] == "dev"]) == 2 and not [e for e in got if e[0] == "other"],
     "a registration filtered to e2 gets nothing for e1's jobs", got)
conn.domainEventDeregisterAny(cb3)

virsh_event.terminate()
out, err = virsh_event.communicate(timeout=30)
expect = ["event 'block-job' for domain 'e1': Block Commit for %s completed" % overlay_b,
          "event 'block-job' for domain 'e1': Active Block Commit for %s ready" % overlay_b,
          "event 'block-job' for domain 'e1': Active Block Commit for %s completed" % base,
          "event 'block-job-2' for domain 'e1': Active Block Commit for vda ready"]
t.ok(all(x in out for x in expect), "stock virsh event prints the block-job events", out + err)

conn.domainEventDeregisterAny(cb1)
conn.domainEventDeregisterAny(cb2)
conn.close()
t.finish()
