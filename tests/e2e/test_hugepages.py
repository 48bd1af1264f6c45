#!/usr/bin/python3
"""test_hugepages - guests whose RAM is on huge pages (<memoryBacking><hugepages/>),
through stock virsh: what virtsnapd asks of the host and what it leaves behind.

A private 2 MiB hugetlbfs (vstest.HugePages) is given to virtsnapd as hugetlbfs_mount.
Asserted:
  - virtsnapd refuses to start on a hugetlbfs_mount that is not a hugetlbfs;
  - dumpxml keeps <memoryBacking>; a started guest's QEMU maps its RAM from the pool
    (Private_Hugetlb in smaps) in <mount>/libvirt/qemu-embed-<hash>/<id>-<name>, and the
    status XML names that directory;
  - save then restore, managedsave then start and an internal snapshot's revert each
    run the guest on huge pages again, the guest continuing from its saved RAM (the
    heartbeat goes on, no new boot), and no directory of a QEMU that ended stays;
  - a virtsnapd killed with SIGKILL and restarted finds the QEMU again and removes its
    directory once the guest is destroyed;
  - refusals leave the domain shut off with no QEMU and no directory: a page size no
    mount has (libvirt's internal error), more RAM than the pool holds (QEMU's error).

The instant snapshots of such guests: test_instant_pause.py (VIRTSNAP_INSTANT_HUGEPAGES=1).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

RAM = 192
t = vstest.Tap()
env = vstest.Env(t, start_daemon=False)
hugepages = env.start_with_hugepages(2 * RAM + 64)
# A hugetlbfs_mount that is no hugetlbfs stops the daemon from starting.
env.daemon.stop()
env.write_conf('hugetlbfs_mount = "%s"\n' % env.images)
t.ok(not env.daemon.start(timeout=10) and "is not a mounted hugetlbfs" in env.daemon.log_text(),
     "virtsnapd refuses a hugetlbfs_mount that is not a hugetlbfs", env.daemon.log_text()[-500:])
env.daemon.stop()
env.write_conf('hugetlbfs_mount = "%s"\n' % hugepages.mount)
t.ok(env.daemon.start(), "virtsnapd starts again with the hugetlbfs", env.daemon.log_text()[-500:])

BACKING = "  <memoryBacking>\n    <hugepages>%s</hugepages>\n  </memoryBacking>\n"


def define(name, ram, page=""):
    xml = env.guest_xml(name, memory_mib=ram, disks=(("vda", 16),), heartbeat_ms=20)
    xml = re.sub(r"(  <memory unit='MiB'>\d+</memory>\n)", lambda m: m.group(1) + BACKING % page, xml, count=1)
    # The serial log is kept across QEMU restarts (restore, revert), so the heartbeat shows continuity.
    log = env.serial_log(name)
    xml = xml.replace("<source path='%s'/>" % log, "<source path='%s' append='on'/>" % log)
    path = os.path.join(env.tmp, name + ".xml")
    with open(path, "w") as f:
        f.write(xml)
    env.virsh_ok("%s: define with <memoryBacking><hugepages>" % name, "define", path)


def on_huge_pages(name, label):
    """The running QEMU's RAM is in one directory of the mount, from the pool; returns it."""
    pid = env.qemu_pid(name)
    path = vstest.qemu_memory_dir(pid)
    dirs = vstest.hugetlbfs_dirs(hugepages.mount, name)
    t.ok(path is not None and dirs == [path] and "/libvirt/qemu-embed-" in path,
         "%s: QEMU's RAM is a memory-backend-file in the domain's one directory on the mount" % label,
         "mem-path %r, directories %r" % (path, dirs))
    kib = vstest.hugetlb_ram_kib(pid, path) if path else None
    t.ok(kib is not None and kib >= RAM << 10, "%s: QEMU maps the guest's RAM from huge pages" % label,
         "Private_Hugetlb %s kB" % kib)
    return path


def no_directory(name, label):
    t.eq(vstest.hugetlbfs_dirs(hugepages.mount, name), [], "%s: no hugetlbfs directory of the domain is left" % label)


def last_seq(name):
    hbs = env.heartbeats(name)
    return hbs[-1][0] if hbs else None


def continues(name, label, seq_before, boots_before):
    """The guest runs on from its saved RAM: heartbeats after seq_before, no new boot."""
    deadline = time.time() + 60
    while time.time() < deadline and (last_seq(name) or 0) <= (seq_before or 0) + 5:
        time.sleep(0.2)
    t.ok(seq_before is not None and (last_seq(name) or 0) > seq_before + 5,
         "%s: the guest's heartbeat goes on" % label, "before %s, now %s" % (seq_before, last_seq(name)))
    t.eq(env.serial_text(name).count("VSGUEST ready"), boots_before, "%s: without a new boot" % label)


name = "hpg"
define(name, RAM)
t.ok("<hugepages/>" in env.virsh("dumpxml", name).out, "dumpxml keeps <memoryBacking><hugepages/>")
env.virsh_ok("start", "start", name)
t.ok(env.wait_serial(name, "VSGUEST ready") is not None, "guest boots")
first = on_huge_pages(name, "start")
status = open(os.path.join(env.root, "run", "qemu", name + ".xml")).read()
t.ok(first is not None and ("<memoryPath path='%s'/>" % first) in status, "the status XML names the directory")

# save / restore
image = os.path.join(env.images, name + ".save")
seq, boots = last_seq(name), env.serial_text(name).count("VSGUEST ready")
env.virsh_ok("save", "save", name, image)
no_directory(name, "after save")
env.virsh_ok("restore", "restore", image)
on_huge_pages(name, "restore")
continues(name, "restore", seq, boots)

# managed save / start
seq = last_seq(name)
env.virsh_ok("managedsave", "managedsave", name)
no_directory(name, "after managedsave")
env.virsh_ok("start from the managed save", "start", name)
on_huge_pages(name, "start from the managed save")
continues(name, "start from the managed save", seq, boots)

# an internal snapshot of the running guest, then a revert to it
env.virsh_ok("internal snapshot", "snapshot-create-as", name, "s1")
seq = last_seq(name)
time.sleep(2)
env.virsh_ok("revert to the internal snapshot", "snapshot-revert", name, "s1", "--running")
on_huge_pages(name, "revert")
continues(name, "revert", seq - 5, boots)

# the daemon killed and restarted: it finds the QEMU and, later, removes its directory
env.daemon.kill9()
t.ok(env.daemon.start(), "virtsnapd restarts after SIGKILL")
t.eq(env.domain_state(name), "running", "the guest is still running")
on_huge_pages(name, "after the daemon restart")
env.virsh_ok("destroy", "destroy", name)
deadline = time.time() + 10
while time.time() < deadline and vstest.hugetlbfs_dirs(hugepages.mount, name):
    time.sleep(0.1)
no_directory(name, "destroy of the QEMU found again")


def refused(label, name, ram, page, expect):
    define(name, ram, page)
    r = env.virsh("start", name)
    t.ok(not r.ok and re.search(expect, r.err), "%s: start fails: %s" % (label, expect), r)
    t.eq(env.domain_state(name), "shut off", "%s: the domain stays shut off" % label)
    t.eq(env.qemu_pids(), [], "%s: no QEMU is left" % label)
    no_directory(name, label)


refused("1 GiB pages", "hp1g", RAM, "<page size='1' unit='G'/>",
        r"internal error: Unable to find any usable hugetlbfs mount for 1048576 KiB")
# More RAM than the pool has free: QEMU cannot map it.
refused("more than the pool", "hpbig", (vstest.meminfo("HugePages_Free") * 2 + 512) // 2 * 2, "",
        r"unable to map backing store for guest RAM: Cannot allocate memory")
t.finish()
