#!/usr/bin/python3
"""Delete through stock virsh: every position of a branched tree of external
snapshots (root, middle, leaf, current, on and off the running chain), with
the guest running and shut off, `qemu-img check` and backing-chain checks
after each, and the counter proving no state a remaining snapshot or the
domain needs was lost. Also internal deletes and undefine's refusal."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)


def chain(path):
    r = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", path],
                       capture_output=True, text=True)
    return [i["filename"] for i in json.loads(r.stdout)] if r.returncode == 0 else None


def check_images(what):
    bad = []
    for f in sorted(os.listdir(env.images)):
        p = os.path.join(env.images, f)
        if f.endswith(".mem") or f.endswith(".xml"):
            continue
        # -U reads an image a running guest may be writing: metadata caught
        # mid-update (a cluster allocated, its refcount not yet written) shows
        # as an error that is gone a moment later; real damage stays.
        for attempt in range(3):
            r = subprocess.run(["qemu-img", "check", "-U", p], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(1)
        if r.returncode != 0:
            bad.append("%s: %s" % (f, r.stdout + r.stderr))
        if chain(p) is None:
            bad.append("%s: broken backing chain" % f)
    t.ok(not bad, what + ": qemu-img check and chains clean", "\n".join(bad))


def counter_of(path):
    n, consistent, raw = env.read_counter(path)
    return n if consistent else None


def snap_counter(name, snap):
    """The counter the snapshot's own disk image (its <domain> source) holds."""
    r = env.virsh("snapshot-dumpxml", name, snap)
    import re
    m = re.search(r"<domain type=.*?<disk.*?<source file='([^']+)'", r.out, re.S)
    return counter_of(m.group(1)) if m else None


def boot(name):
    env.define_guest(name)
    env.virsh_ok("start " + name, "start", name)
    t.ok(env.wait_serial(name, r"VSGUEST ready") is not None, name + " boots")
    time.sleep(1)


def snap_paused(name, snap):
    env.virsh_ok(name + ": suspend", "suspend", name)
    time.sleep(0.2)
    n = counter_of(env.disk_path(name, "vda"))
    env.virsh_ok(name + ": snapshot " + snap, "snapshot-create-as", name, snap, "--disk-only")
    env.virsh_ok(name + ": resume", "resume", name)
    time.sleep(1)
    return n


# ---- a branched tree, guest running:  a ─ b ─ c      (c current, running chain a,b,c)
#                                           └─ (revert to b) ─ d
boot("d1")
ca = snap_paused("d1", "a")
cb = snap_paused("d1", "b")
cc = snap_paused("d1", "c")
env.virsh_ok("d1: shut off to branch", "destroy", "d1")
env.virsh_ok("d1: revert to b (branch)", "snapshot-revert", "d1", "b", "--running")
time.sleep(2)
cd = snap_paused("d1", "d")
expected = {"a": ca, "b": cb, "c": cc, "d": cd}
for s, n in expected.items():
    t.eq(snap_counter("d1", s), n, "d1: snapshot %s holds its counter before deletes" % s)

# leaf off the running chain (c), guest running
env.virsh_ok("d1: delete leaf c (off the running chain)", "snapshot-delete", "d1", "c")
check_images("after deleting c")
for s in ("a", "b", "d"):
    t.eq(snap_counter("d1", s), expected[s], "d1: %s intact after deleting c" % s)
# middle snapshot b (a branch point), guest running
env.virsh_ok("d1: delete middle b (branch point)", "snapshot-delete", "d1", "b")
check_images("after deleting b")
for s in ("a", "d"):
    t.eq(snap_counter("d1", s), expected[s], "d1: %s intact after deleting b" % s)
# current snapshot d, on the running chain (active commit with pivot)
env.virsh_ok("d1: delete current d (running chain top)", "snapshot-delete", "d1", "d")
check_images("after deleting d")
t.eq(env.domain_state("d1"), "running", "d1: guest still running after active commit")
t.eq(snap_counter("d1", "a"), expected["a"], "d1: a intact after deleting d")
time.sleep(1)
env.virsh_ok("d1: suspend", "suspend", "d1")
n, consistent, raw = env.read_counter(env.disk_path("d1", "vda"))
t.ok(consistent, "d1: running disk consistent after the pivot", raw)
env.virsh_ok("d1: resume", "resume", "d1")
# root a, guest shut off (qemu-img commit)
env.virsh_ok("d1: shut off", "destroy", "d1")
before = counter_of(env.disk_path("d1", "vda"))
env.virsh_ok("d1: delete root a (shut off)", "snapshot-delete", "d1", "a")
check_images("after deleting a")
t.eq(counter_of(env.disk_path("d1", "vda")), before, "d1: domain disk unchanged by deleting a")
r = env.virsh("snapshot-list", "d1", "--name")
t.eq(r.out.split(), [], "d1: no snapshots left")

# ---- CHILDREN / CHILDREN_ONLY on external snapshots, shut off ----
boot("d2")
snap_paused("d2", "p")
snap_paused("d2", "q")
snap_paused("d2", "r")
env.virsh_ok("d2: shut off", "destroy", "d2")
top_before = counter_of(env.disk_path("d2", "vda"))
env.virsh_ok("d2: delete p --children-only", "snapshot-delete", "d2", "p", "--children-only")
t.eq(env.virsh("snapshot-list", "d2", "--name").out.split(), ["p"], "d2: only p left")
check_images("after children-only")
t.eq(counter_of(env.disk_path("d2", "vda")), top_before, "d2: domain state kept")
env.virsh_ok("d2: delete p --children", "snapshot-delete", "d2", "p", "--children")
t.eq(counter_of(env.disk_path("d2", "vda")), top_before, "d2: domain state kept after --children")

# ---- internal snapshots: running and shut off; metadata only ----
boot("d3")
env.virsh_ok("d3: internal i1", "snapshot-create-as", "d3", "i1")
env.virsh_ok("d3: internal i2", "snapshot-create-as", "d3", "i2")
env.virsh_ok("d3: delete i2 running", "snapshot-delete", "d3", "i2")
img = env.disk_path("d3", "vda")
tags = subprocess.run(["qemu-img", "snapshot", "-U", "-l", img], capture_output=True, text=True).stdout
t.ok("i2" not in tags and "i1" in tags, "d3: i2 gone from the image, i1 kept", tags)
env.virsh_ok("d3: shut off", "destroy", "d3")
env.virsh_ok("d3: delete i1 shut off", "snapshot-delete", "d3", "i1")
tags = subprocess.run(["qemu-img", "snapshot", "-l", img], capture_output=True, text=True).stdout
t.ok("i1" not in tags, "d3: i1 gone from the image", tags)
env.virsh_ok("d3: internal i3", "snapshot-create-as", "d3", "i3")
env.virsh_ok("d3: delete i3 --metadata", "snapshot-delete", "d3", "i3", "--metadata")
tags = subprocess.run(["qemu-img", "snapshot", "-l", img], capture_output=True, text=True).stdout
t.ok("i3" in tags, "d3: --metadata keeps the image's snapshot", tags)

# ---- undefine ----
env.virsh_ok("d3: one more snapshot", "snapshot-create-as", "d3", "u1")
r = env.virsh("undefine", "d3")
t.ok(not r.ok and "cannot delete inactive domain with 1 snapshots" in r.err, "undefine refused with snapshots", r)
env.virsh_ok("undefine --snapshots-metadata", "undefine", "d3", "--snapshots-metadata")

t.finish()
