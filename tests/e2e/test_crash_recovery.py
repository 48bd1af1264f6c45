#!/usr/bin/python3
"""test_crash_recovery - virtsnapd killed (VIRTSNAP_TEST_CRASH_AT, _exit(137) as
SIGKILL would) at every journalled step of a running disk-only snapshot, an
external snapshot with memory and an internal running snapshot, then restarted
without the hook. After each restart: the guest runs (or stays paused when it
was), no journal is left, every image passes qemu-img check, no file in the
images directory that nothing references, the snapshot list matches the files
(committed snapshots exist with their files, the others left nothing), and the
disk sources in dumpxml are the images QEMU actually has open."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
JDIR = os.path.join(env.root, "lib", "qemu", "journal")


def chain_of(path):
    r = subprocess.run(["qemu-img", "info", "-U", "--output=json", "--backing-chain", path],
                       capture_output=True, text=True)
    return [i["filename"] for i in json.loads(r.stdout)] if r.returncode == 0 else []


def tags_of(path):
    r = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True, text=True)
    return [s["name"] for s in json.loads(r.stdout).get("snapshots", [])] if r.returncode == 0 else []


def sources(dom, inactive=False):
    """{target: top source} from dumpxml."""
    r = env.virsh("dumpxml", *(["--inactive"] if inactive else []), dom)
    out = {}
    for m in re.finditer(r"<disk type='file' device='disk'>.*?<source file='([^']+)'.*?<target dev='(\w+)'",
                         r.out, re.S):
        out.setdefault(m.group(2), m.group(1))
    return out


def qemu_open_images():
    files = set()
    for pid in env.qemu_pids():
        fd_dir = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    p = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if p.startswith(env.images + "/"):
                    files.add(p)
        except OSError:
            pass
    return files


def snapshots(dom):
    r = env.virsh("snapshot-list", dom, "--name")
    return [n for n in r.out.split() if n]


def check(label, dom, state, created, expect_exists=None):
    """The invariants after a restart; `created` is the snapshot name tried."""
    t.ok(env.wait_state(dom, state, timeout=30), "%s: domain %s" % (label, state), env.domain_state(dom))
    journals = os.listdir(JDIR) if os.path.isdir(JDIR) else []
    t.eq(journals, [], "%s: no journal left" % label)
    live, pers = sources(dom), sources(dom, inactive=True)
    referenced = set()
    for p in list(live.values()) + list(pers.values()):
        referenced.update(chain_of(p))
    names = snapshots(dom)
    snap_ok = True
    diag = []
    for n in names:
        x = env.virsh("snapshot-dumpxml", dom, n).out
        for f in re.findall(r"<memory snapshot='external' file='([^']+)'", x):
            referenced.add(f)
            if not os.path.exists(f) or open(f, "rb").read(16) != b"LibvirtQemudSave":
                snap_ok = False
                diag.append("%s: memory file %s missing or incomplete" % (n, f))
        for f in re.findall(r"<disk name='\w+' snapshot='external' type='file'>\s*<source file='([^']+)'", x):
            if f not in referenced:
                snap_ok = False
                diag.append("%s: overlay %s not in use" % (n, f))
        if "<memory snapshot='internal'/>" in x and not any(n in tags_of(p) for p in referenced
                                                             if os.path.exists(p) and not p.endswith(".mem")):
            snap_ok = False
            diag.append("%s: internal snapshot missing in the images" % n)
    images = set(os.path.join(env.images, f) for f in os.listdir(env.images))
    t.eq(sorted(images - referenced), [], "%s: no file nothing references" % label)
    all_tags = set()
    for p in referenced:
        if os.path.exists(p) and not p.endswith(".mem"):
            all_tags.update(tags_of(p))
    t.ok(snap_ok and all_tags <= set(names), "%s: snapshot list consistent with the files" % label,
         "\n".join(diag) + "\ntags %r names %r" % (all_tags, names))
    if expect_exists is not None:
        t.eq(created in names, expect_exists, "%s: snapshot %s %s" % (label, created,
                                                                         "exists" if expect_exists else "dropped"))
    bad = []
    opened = qemu_open_images() if state != "shut off" else set()
    for p in referenced:
        if p.endswith(".mem") or not os.path.exists(p):
            continue
        r = subprocess.run(["qemu-img", "check", "-U", p], capture_output=True, text=True)
        # 3 = leaked clusters only: what -U reads of an image QEMU has open and is writing
        if r.returncode != 0 and not (r.returncode == 3 and p in opened):
            bad.append(p + ": " + r.stdout + r.stderr)
    t.eq(bad, [], "%s: qemu-img check of every image" % label)
    if state != "shut off":
        opened = qemu_open_images()
        tops_open = all(p in opened for p in live.values())
        chain_files = set()
        for p in live.values():
            chain_files.update(chain_of(p))
        t.ok(tops_open and opened <= chain_files, "%s: dumpxml sources are what QEMU has open" % label,
             "live %r\nopen %r" % (live, sorted(opened)))
        t.eq(pers, {k: v for k, v in live.items()}, "%s: persistent definition follows the live disks" % label)


def crash_and_restart(label, dom, args, step):
    env.daemon.stop()
    if not env.daemon.start(env={"VIRTSNAP_TEST_CRASH_AT": step}):
        t.ok(False, "%s: daemon starts with the hook" % label, env.daemon.log_text()[-2000:])
        return False
    r = env.virsh("snapshot-create-as", dom, *args, timeout=600)
    try:
        rc = env.daemon.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    killed = rc == 137
    if not killed and r.ok:
        # The step was never reached (the mode has no such step): nothing to recover.
        t.note("%s: step not reached (rc=%r)" % (label, rc))
        env.daemon.stop()
    if not env.daemon.start():
        t.ok(False, "%s: daemon restarts" % label, env.daemon.log_text()[-3000:])
        return killed
    return killed


env.define_guest("c1", disks=(("vda", 16), ("vdb", 16)), heartbeat_ms=50)
env.virsh_ok("start c1", "start", "c1")
t.ok(env.wait_serial("c1", r"VSGUEST ready", timeout=180) is not None, "c1 ready", env.serial_text("c1")[-1500:])


def guest_progresses(label, dom):
    n = len(env.serial_text(dom))
    t.ok(env.wait_serial(dom, r"VSHB \d+", timeout=30, start=n) is not None, "%s: guest runs on" % label)


# (mode, args builder, [(step, committed?)])
DISK_ONLY = ["begin", "create-overlay", "create-overlay:done#2", "blockdev-add", "blockdev-add#4",
             "transaction", "commit", "end"]
MEMORY = ["pause", "memory", "memory:done", "create-overlay#2", "blockdev-add#3", "transaction", "commit"]
INTERNAL = ["pause", "snapshot-save", "commit"]
COMMITTED = {"commit", "end"}

i = 0
for mode, steps in (("disk-only", DISK_ONLY), ("memory", MEMORY), ("internal", INTERNAL)):
    for step in steps:
        i += 1
        name = "c%d" % i
        if mode == "disk-only":
            args = (name, "--disk-only", "--atomic")
        elif mode == "memory":
            args = (name, "--memspec", "file=%s/%s.mem,snapshot=external" % (env.images, name),
                    "--diskspec", "vda,snapshot=external", "--diskspec", "vdb,snapshot=external")
        else:
            args = (name,)
        label = "%s killed at %s" % (mode, step)
        killed = crash_and_restart(label, "c1", args, step)
        t.ok(killed, "%s: daemon killed at the step" % label, env.daemon.log_text()[-1500:])
        check(label, "c1", "running", name, expect_exists=step in COMMITTED)
        guest_progresses(label, "c1")

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
