#!/usr/bin/python3
"""Revert through stock virsh and python-libvirt: every kind of snapshot, with
the guest's disk counter (and, for memory snapshots, its heartbeat sequence)
proving that the guest is exactly at the snapshot's instant."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
import libvirt  # noqa: E402


def counter(name, target="vda"):
    n, consistent, raw = env.read_counter(env.disk_path(name, target))
    return n, consistent, raw


def last_hb(name):
    hb = env.heartbeats(name)
    return hb[-1][0] if hb else None


def boot(name, **kw):
    env.define_guest(name, **kw)
    env.virsh_ok("start " + name, "start", name)
    t.ok(env.wait_serial(name, r"VSGUEST ready") is not None, name + " boots", env.serial_text(name)[-2000:])
    env.wait_counter(name)  # the freeze points read the disk counter
    time.sleep(1.5)


def freeze_point(name):
    """Pauses the guest and returns (disk counter, heartbeat seq, heartbeat count)."""
    env.virsh_ok("suspend " + name, "suspend", name)
    time.sleep(0.3)
    n, consistent, raw = counter(name)
    t.ok(consistent, name + ": counter consistent at the snapshot", raw)
    return n, last_hb(name), len(env.heartbeats(name))


def check_memory_continues(name, hb_seq, hb_count, what):
    """After a memory revert and resume, the guest goes on from the snapshot's heartbeat."""
    time.sleep(2)
    hb = env.heartbeats(name)
    post = hb[hb_count:] if len(hb) > hb_count else hb
    firsts = [s for s, _, _ in post if s > hb_seq and s <= hb_seq + 3]
    t.ok(bool(firsts), what + ": heartbeats resume right after the snapshot's (%s)" % hb_seq,
         "post=%r" % post[:5])
    t.ok("VSGUEST ready" not in env.serial_text(name)[-200000:].split("VSHB %d " % hb_seq)[-1],
         what + ": no reboot after the revert")


# ---- flag and error checks ----
boot("r0")
env.virsh_ok("r0: internal snapshot", "snapshot-create-as", "r0", "s1")
r = env.virsh("snapshot-revert", "r0", "s1", "--running", "--paused")
t.ok(not r.ok and "mutually exclusive" in r.err, "RUNNING+PAUSED refused", r)
r = env.virsh("snapshot-revert", "r0", "nope")
t.ok(not r.ok and "no domain snapshot with matching name 'nope'" in r.err, "unknown snapshot refused", r)
r = env.virsh("snapshot-revert", "r0", "s1", read_only=True)
t.ok(not r.ok, "read-only connection refused", r)

# ---- internal, running guest (QEMU snapshot-load) ----
boot("r1")
n1, hb1, hbc1 = freeze_point("r1")
env.virsh_ok("r1: snapshot of the paused guest", "snapshot-create-as", "r1", "s1")
env.virsh_ok("r1: resume", "resume", "r1")
time.sleep(2)
n_later, _, _ = counter("r1")
t.ok(n_later is not None and n1 is not None and n_later > n1, "r1: guest moved on (%s > %s)" % (n_later, n1))
hbc_before = len(env.heartbeats("r1"))
env.virsh_ok("r1: revert --paused", "snapshot-revert", "r1", "s1", "--paused")
t.eq(env.domain_state("r1"), "paused", "r1: paused after revert --paused")
n2, consistent, raw = counter("r1")
t.ok(consistent and n2 == n1, "r1: disk is at the snapshot's counter (%s == %s)" % (n2, n1), raw)
env.virsh_ok("r1: resume after revert", "resume", "r1")
check_memory_continues("r1", hb1, hbc_before, "r1")
conn = env.connect()
dom = conn.lookupByName("r1")
t.eq(dom.snapshotCurrent().getName(), "s1", "r1: reverted snapshot is current")
# python-libvirt, RUNNING flag on a paused snapshot
snap = dom.snapshotLookupByName("s1")
dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
t.eq(dom.state()[0], libvirt.VIR_DOMAIN_RUNNING, "r1: python revert with RUNNING runs the guest")
env.virsh("destroy", "r1")

# ---- internal, shut off (qemu-img snapshot -a) ----
boot("r2")
env.virsh_ok("r2: shutdown", "destroy", "r2")
n_off, consistent, raw = counter("r2")
env.virsh_ok("r2: offline snapshot", "snapshot-create-as", "r2", "off1")
env.virsh_ok("r2: start again", "start", "r2")
time.sleep(3)
env.virsh_ok("r2: revert to the offline snapshot", "snapshot-revert", "r2", "off1")
t.eq(env.domain_state("r2"), "shut off", "r2: shut off after reverting to a shut-off snapshot")
n3, consistent, raw = counter("r2")
t.ok(consistent and n3 == n_off, "r2: disk back at %s (got %s)" % (n_off, n3), raw)
env.virsh_ok("r2: revert --running", "snapshot-revert", "r2", "off1", "--running")
t.eq(env.domain_state("r2"), "running", "r2: running after --running")
env.virsh("destroy", "r2")

# ---- external disk-only ----
boot("r3")
n4, _, _ = freeze_point("r3")
env.virsh_ok("r3: disk-only snapshot", "snapshot-create-as", "r3", "d1", "--disk-only")
base_top = env.disk_path("r3", "vda")
env.virsh_ok("r3: resume", "resume", "r3")
time.sleep(2)
env.virsh_ok("r3: revert to disk-only", "snapshot-revert", "r3", "d1")
t.eq(env.domain_state("r3"), "shut off", "r3: disk-only revert leaves the domain shut off")
new_top = env.disk_path("r3", "vda")
t.ok(new_top and new_top != base_top, "r3: domain runs on a new overlay (%s)" % new_top)
n5, consistent, raw = counter("r3")
t.ok(consistent and n5 == n4, "r3: new overlay reads the snapshot's counter (%s == %s)" % (n5, n4), raw)
t.ok(os.path.exists(base_top), "r3: the branch left behind is kept")
env.virsh_ok("r3: revert again", "snapshot-revert", "r3", "d1", "--running")
t.eq(env.domain_state("r3"), "running", "r3: second revert to the same snapshot boots")
env.virsh("destroy", "r3")

# ---- external with memory ----
boot("r4")
n6, hb6, _ = freeze_point("r4")
mem = os.path.join(env.images, "r4.mem")
env.virsh_ok("r4: memory snapshot", "snapshot-create-as", "r4", "m1", "--memspec", "file=" + mem)
env.virsh_ok("r4: resume", "resume", "r4")
time.sleep(2)
hbc = len(env.heartbeats("r4"))
env.virsh_ok("r4: revert to memory snapshot --paused", "snapshot-revert", "r4", "m1", "--paused")
t.eq(env.domain_state("r4"), "paused", "r4: paused after revert")
n7, consistent, raw = counter("r4")
t.ok(consistent and n7 == n6, "r4: disk at the snapshot's counter (%s == %s)" % (n7, n6), raw)
env.virsh_ok("r4: resume", "resume", "r4")
check_memory_continues("r4", hb6, hbc, "r4")
env.virsh("destroy", "r4")

t.finish()
