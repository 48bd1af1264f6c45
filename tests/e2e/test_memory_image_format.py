#!/usr/bin/python3
"""test_memory_image_format - virtsnapd.conf's snapshot_image_format,
save_image_format and memory_image_channels (libvirt qemu.conf's names), through
stock virsh and python-libvirt, with the test guest.

"sparse" is libvirt 11's sparse save-image format: the 92-byte libvirt save
header with format 6, the domain XML, then QEMU's migration stream in the
mapped-ram layout (guest pages at fixed offsets, zero pages left as holes).
It applies to external memory snapshots taken without the instant method and
to save / managedsave; instant snapshots (what LIVE uses by default, where the
host can) keep the plain stream (format 0).

The emulator decides the branch (VIRTSNAP_TEST_EMULATOR; the test runs once on
Debian 12's QEMU 7.2 and once on QEMU 10):

  - QEMU >= 9.0 (mapped-ram): non-live memory snapshots of a running and of a
    paused guest and `virsh save` / `managedsave` write format 6 (complete
    magic, version 2, was_running, the domain XML, QEMU's stream at
    92 + data_len, apparent size >= guest RAM, fewer bytes allocated than the
    apparent size); an INSTANT snapshot and a LIVE one by the instant method
    write format 0 (skipped where the host cannot take them); the overlays pass
    qemu-img check and are backed by the old images; snapshot-revert to the
    sparse snapshot (--paused and plain) brings back the snapshot's instant
    (the disk counter of the frozen image, the heartbeat sequence continuing
    from inside the snapshot call's window, no reboot); restore and managed
    save start continue from the saved heartbeat; a daemon configured back to
    "raw" still restores the sparse image (the header decides) and writes
    format 0 again.
  - QEMU 7.2 (no mapped-ram): a non-live memory snapshot, save and managedsave
    are refused with VIR_ERR_OPERATION_UNSUPPORTED naming mapped-ram, before
    anything is touched (guest running or still paused, no memory file, no
    overlay, no snapshot, no managed-save image); INSTANT and LIVE (instant
    method) snapshots still work (format 0); the default ("raw") writes format 0.

Both: invalid values of the three settings stop virtsnapd at start-up with a
configuration error."""
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402
import memimage  # noqa: E402
from memimage import FMT_SPARSE, img_check, img_info, parse_image, summary  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t, start_daemon=False)
import libvirt  # noqa: E402

RAM_MIB = 192
RAM = RAM_MIB << 20
CONF = os.path.join(env.root, "etc", "virtsnapd.conf")
mi = memimage.Checks(env, t, CONF)
restart_daemon = mi.restart_daemon
SPARSE_CONF = 'snapshot_image_format = "sparse"\nsave_image_format = "sparse"\nmemory_image_channels = 3\n'
MANAGED = os.path.join(env.root, "lib", "qemu", "save", "g1.save")


def emulator_version(binary):
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    m = re.search(r"version (\d+)\.(\d+)", r.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else None


VERSION = emulator_version(env.emulator)
if VERSION is None:
    t.ok(False, "emulator %s reports its version" % env.emulator)
    t.finish()
MAPPED_RAM = VERSION >= (9, 0)   # QEMU 9.0 added the mapped-ram migration capability
t.note("emulator %s: QEMU %d.%d, mapped-ram %s" % (env.emulator, VERSION[0], VERSION[1],
                                                   "expected" if MAPPED_RAM else "absent"))


def check_sparse_image(label, path, was_running):
    """Format 6, complete, the domain XML, the stream after it, holes."""
    h = parse_image(path)
    t.ok(h is not None and h["magic"] == b"LibvirtQemudSave", "%s: complete image (LibvirtQemudSave)" % label,
         summary(h))
    if h is None:
        return None
    t.ok(h["version"] == 2 and h["format"] == FMT_SPARSE and h["was_running"] == was_running and h["unused_zero"],
         "%s: header version 2, format 6 (sparse), was_running %d, unused zero" % (label, was_running), summary(h))
    try:
        dom_xml = ET.fromstring(h["xml"])
        xml_ok = dom_xml.tag == "domain" and dom_xml.findtext("name") == "g1"
    except ET.ParseError as e:
        xml_ok = False
        h["xml_error"] = str(e)
    t.ok("<domain" in h["xml"] and xml_ok, "%s: the header's domain XML parses (<domain>, g1)" % label,
         h["xml"][:400] + "\n" + h.get("xml_error", ""))
    t.eq(h["stream"][:4], b"QEVM", "%s: QEMU's migration stream at 92 + data_len" % label)
    t.ok(h["size"] >= RAM, "%s: apparent size %d >= guest RAM %d (pages at fixed offsets)" %
         (label, h["size"], RAM))
    t.ok(h["allocated"] < h["size"], "%s: allocated %d < apparent %d (zero pages are holes)" %
         (label, h["allocated"], h["size"]))
    t.note("%s: apparent %d MiB, allocated %d MiB" % (label, h["size"] >> 20, h["allocated"] >> 20))
    return h


def guest_xml():
    # append='on' keeps the serial log across QEMU restarts (revert, restore).
    xml = env.guest_xml("g1", disks=(("vda", 16),), memory_mib=RAM_MIB, heartbeat_ms=20)
    return mi.serial_appended(xml)


def boot():
    mi.boot(guest_xml())
    env.wait_counter("g1")  # the frozen images are checked for a consistent counter
    time.sleep(1.0)


def memory_snapshot(name, *extra, mem=None, overlay=None):
    mem = mem or os.path.join(env.images, name + ".mem")
    overlay = overlay or os.path.join(env.images, "g1-vda." + name)
    r = env.virsh("snapshot-create-as", "g1", name, "--memspec", "file=%s,snapshot=external" % mem,
                  "--diskspec", "vda,snapshot=external,file=%s" % overlay, *extra)
    return r, mem, overlay


INSTANT = 1 << 10   # virtsnap's VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT


def live_snapshots(name):
    """The instant method keeps the plain stream whatever the setting: an INSTANT
    snapshot (python-libvirt), then `virsh snapshot-create-as --live`, which uses
    the instant method (snapshot_live_method's default) on a host that can."""
    top = env.disk_path("g1", "vda")
    mem = os.path.join(env.images, name + "i.mem")
    overlay = os.path.join(env.images, "g1-vda.%si" % name)
    xml = ("<domainsnapshot><name>%si</name><memory snapshot='external' file='%s'/><disks>"
           "<disk name='vda' snapshot='external'><source file='%s'/></disk></disks></domainsnapshot>" %
           (name, mem, overlay))
    conn = env.connect()
    try:
        conn.lookupByName("g1").snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE | INSTANT)
        err = None
    except libvirt.libvirtError as e:
        err = str(e)
    finally:
        conn.close()
    labels = ("%si: INSTANT memory snapshot with sparse configured" % name, "%si memory (instant)" % name,
              "%si: guest running afterwards" % name, "%si: overlay checks and is backed by the previous top" % name,
              "%s: LIVE memory snapshot (virsh --live, instant method)" % name, "%s memory (--live)" % name)
    if err is not None and "instant snapshots are not supported" in err:
        for label in labels:
            t.skip(label, "the host cannot take instant snapshots: " + err)
        return
    t.ok(err is None, labels[0], err)
    mi.check_raw_image(labels[1], mem)
    t.eq(env.domain_state("g1"), "running", labels[2])
    good, out = img_check(overlay)
    chain = img_info(overlay, chain=True)
    t.ok(good and chain is not None and len(chain) >= 2 and chain[1]["filename"] == top, labels[3],
         out + "\n%r" % chain)
    r, mem2, _ = memory_snapshot(name, "--live")
    t.ok(r.ok, labels[4], r)
    mi.check_raw_image(labels[5], mem2)


# ================= configuration errors (no guest needed) =================
for conf, label in (('snapshot_image_format = "bogus"\n', "snapshot_image_format = \"bogus\""),
                    ('save_image_format = "bogus"\n', "save_image_format = \"bogus\""),
                    ("memory_image_channels = -1\n", "memory_image_channels = -1")):
    mi.refuses_to_start(conf, label)

mi.write_conf(SPARSE_CONF)
if not env.daemon.start():
    t.ok(False, "virtsnapd starts with the sparse configuration", env.daemon.log_text()[-3000:])
    t.finish()
t.ok(True, "virtsnapd starts with snapshot_image_format/save_image_format = \"sparse\", memory_image_channels = 3")
boot()
vda0 = env.disk_path("g1", "vda")


if MAPPED_RAM:
    # ================= QEMU with mapped-ram: the sparse format =================
    # 1. non-live memory snapshot of the running guest
    l0 = len(env.serial_text("g1"))
    r, mem1, ov1 = memory_snapshot("s1")
    l1 = len(env.serial_text("g1"))
    window1 = (mi.last_seq(l0), mi.last_seq(l1))
    t.ok(r.ok, "s1: non-live memory snapshot of the running guest", r)
    check_sparse_image("s1 memory", mem1, 1)
    r = env.virsh("snapshot-dumpxml", "g1", "s1")
    t.ok(r.ok and "<state>running</state>" in r.out and "<memory snapshot='external' file='%s'/>" % mem1 in r.out,
         "s1: snapshot XML names the memory file", r)
    t.eq(env.disk_path("g1", "vda"), ov1, "s1: the disk moved to the overlay")
    good, out = img_check(ov1)
    t.ok(good, "s1: qemu-img check of the overlay", out)
    good, out = img_check(vda0)
    t.ok(good, "s1: qemu-img check of the old image", out)
    chain = img_info(ov1, chain=True)
    t.ok(chain is not None and len(chain) == 2 and chain[1]["filename"] == vda0,
         "s1: qemu-img info --backing-chain: the overlay is backed by the old image", chain)
    t.eq(env.domain_state("g1"), "running", "s1: guest running afterwards")
    mi.progresses("s1")
    n_snap, consistent, raw = env.read_counter(vda0)
    t.ok(n_snap is not None and consistent, "s1: the frozen image holds a consistent counter (%s)" % n_snap, raw)

    # 2. instant (and LIVE by the instant method) memory snapshots: the plain stream
    live_snapshots("s2")

    # a paused guest: sparse too, was_running 0, stays paused
    env.virsh_ok("suspend", "suspend", "g1")
    r, mem3, ov3 = memory_snapshot("s3")
    t.ok(r.ok, "s3: non-live memory snapshot of the paused guest", r)
    check_sparse_image("s3 memory (paused)", mem3, 0)
    t.eq(env.domain_state("g1"), "paused", "s3: a paused guest stays paused")
    good, out = img_check(ov3)
    t.ok(good, "s3: qemu-img check of the overlay", out)
    env.virsh_ok("resume", "resume", "g1")
    time.sleep(2.0)  # the guest runs on well past s1

    # 3. revert to s1 (sparse memory): the snapshot's instant comes back
    rb = mi.readies()
    files_before = set(mi.images())
    prev, off = mi.last_seq(), len(env.serial_text("g1"))
    env.virsh_ok("revert to s1 --paused", "snapshot-revert", "g1", "s1", "--paused")
    t.eq(env.domain_state("g1"), "paused", "revert --paused: paused")
    top = env.disk_path("g1", "vda")
    t.ok(top is not None and os.path.basename(top) not in files_before,
         "revert --paused: the guest runs on a new overlay (%s)" % top)
    n, consistent, raw = env.read_counter(top) if top else (None, False, "no disk")
    t.ok(consistent and n is not None and n == n_snap,
         "revert --paused: the disk is at the snapshot's counter (%s == %s)" % (n, n_snap), raw)
    chain = img_info(top, chain=True) if top else None
    t.ok(chain is not None and len(chain) == 2 and chain[1]["filename"] == vda0,
         "revert --paused: the new overlay is backed by s1's image", chain)
    env.virsh_ok("resume after the revert", "resume", "g1")
    mi.check_revert("revert --paused + resume", window1, off, prev, rb)
    t.eq(env.virsh("snapshot-current", "g1", "--name").out.strip(), "s1", "revert: s1 is current")
    time.sleep(1.5)

    mi.revert_running("revert", "s1", window1)
    good, out = img_check(env.disk_path("g1", "vda"))
    t.ok(good, "revert: qemu-img check of the new overlay", out)

    # 4. save / restore
    rb = mi.readies()
    img = os.path.join(env.images, "g1.save")
    env.virsh_ok("virsh save (sparse)", "save", "g1", img)
    saved = mi.frozen()
    t.eq(mi.state(), "shut off (saved)", "save: shut off (saved)")
    check_sparse_image("save image", img, 1)
    env.virsh_ok("virsh restore of the sparse image", "restore", img)
    t.eq(mi.state(), "running (restored)", "restore: running (restored)")
    mi.check_continues("restore", saved, rb)

    # 5. managed save / start
    rb = mi.readies()
    env.virsh_ok("virsh managedsave (sparse)", "managedsave", "g1")
    msaved = mi.frozen()
    t.eq(mi.state(), "shut off (saved)", "managedsave: shut off (saved)")
    t.ok(re.search(r"Managed save:\s+yes", env.virsh("dominfo", "g1").out), "dominfo: Managed save: yes")
    check_sparse_image("managed save image", MANAGED, 1)
    env.virsh_ok("start from the managed save", "start", "g1")
    t.eq(mi.state(), "running (restored)", "start resumes the managed save")
    mi.check_continues("managed save start", msaved, rb)
    t.ok(not os.path.exists(MANAGED), "managed save image removed after the start")

    # The header decides how an image is read: a daemon back on "raw" restores the sparse image.
    restart_daemon("", "the default configuration")
    env.virsh_ok("destroy", "destroy", "g1")
    rb = mi.readies()
    point = (len(env.serial_text("g1")), saved[1])   # the image still holds the guest at the saved heartbeat
    env.virsh_ok("restore of the sparse image by a daemon configured raw", "restore", img)
    t.eq(mi.state(), "running (restored)", "raw daemon, sparse image: running (restored)")
    mi.check_continues("raw daemon, sparse image", point, rb)
else:
    # ================= QEMU without mapped-ram: refused before anything is touched =================
    def refused(label, r, before, vda):
        t.ok(not r.ok and "error: Operation not supported" in r.err and "mapped-ram" in r.err,
             "%s: refused, Operation not supported naming mapped-ram" % label, r)
        t.eq(mi.images(), before, "%s: no memory file, no overlay" % label)
        t.eq(mi.snap_names(), [], "%s: no snapshot listed" % label)
        t.eq(env.disk_path("g1", "vda"), vda, "%s: the disk is unchanged" % label)

    before = mi.images()
    r, mem1, ov1 = memory_snapshot("s1")
    refused("non-live memory snapshot", r, before, vda0)
    t.eq(env.domain_state("g1"), "running", "non-live memory snapshot: guest still running")
    mi.progresses("non-live memory snapshot")

    env.virsh_ok("suspend", "suspend", "g1")
    r, _, _ = memory_snapshot("s1p")
    refused("non-live memory snapshot of a paused guest", r, before, vda0)
    t.eq(env.domain_state("g1"), "paused", "paused guest: still paused after the refusal")
    env.virsh_ok("resume", "resume", "g1")

    conn = env.connect()
    dom = conn.lookupByName("g1")
    pmem = os.path.join(env.images, "py.mem")
    xml = ("<domainsnapshot><name>py1</name><memory snapshot='external' file='%s'/><disks>"
           "<disk name='vda' snapshot='external'><source file='%s'/></disk></disks></domainsnapshot>" %
           (pmem, os.path.join(env.images, "g1-vda.py1")))
    for label, call in (("python snapshotCreateXML", lambda: dom.snapshotCreateXML(xml, 0)),
                        ("python save", lambda: dom.save(os.path.join(env.images, "py.save"))),
                        ("python managedSave", lambda: dom.managedSave(0))):
        try:
            call()
            code, msg = None, "succeeded"
        except libvirt.libvirtError as e:
            code, msg = e.get_error_code(), str(e)
        t.ok(code == libvirt.VIR_ERR_OPERATION_UNSUPPORTED and "mapped-ram" in msg,
             "%s: VIR_ERR_OPERATION_UNSUPPORTED (%d) naming mapped-ram" % (label, libvirt.VIR_ERR_OPERATION_UNSUPPORTED),
             "code=%r %s" % (code, msg))
    t.eq(mi.images(), before, "python calls: nothing created")
    t.eq(mi.snap_names(), [], "python calls: no snapshot listed")
    conn.close()

    img = os.path.join(env.images, "g1.save")
    r = env.virsh("save", "g1", img)
    t.ok(not r.ok and "error: Operation not supported" in r.err and "mapped-ram" in r.err,
         "virsh save: refused, Operation not supported naming mapped-ram", r)
    t.ok(not os.path.exists(img), "virsh save: no image file")
    t.eq(env.domain_state("g1"), "running", "virsh save: guest still running")

    r = env.virsh("managedsave", "g1")
    t.ok(not r.ok and "error: Operation not supported" in r.err and "mapped-ram" in r.err,
         "virsh managedsave: refused, Operation not supported naming mapped-ram", r)
    t.ok(not os.path.exists(MANAGED), "virsh managedsave: no managed save image")
    t.ok(re.search(r"Managed save:\s+no", env.virsh("dominfo", "g1").out), "virsh managedsave: Managed save: no")
    t.eq(env.domain_state("g1"), "running", "virsh managedsave: guest still running")
    t.eq(mi.images(), before, "after the refusals: no file in the image directory")
    mi.progresses("after the refusals")

    # instant (and LIVE by the instant method) memory snapshots keep the plain stream: not refused
    live_snapshots("s2")

    restart_daemon("", "the default configuration")

# ================= the default ("raw"): format 0 =================
r, memd, ovd = memory_snapshot("d1")
t.ok(r.ok, "default: non-live memory snapshot", r)
mi.check_raw_image("default: snapshot memory", memd)
t.eq(env.domain_state("g1"), "running", "default: guest running after the snapshot")
rb = mi.readies()
img0 = os.path.join(env.images, "g1-raw.save")
env.virsh_ok("default: virsh save", "save", "g1", img0)
saved0 = mi.frozen()
mi.check_raw_image("default: save image", img0)
env.virsh_ok("default: virsh restore", "restore", img0)
t.eq(mi.state(), "running (restored)", "default: restore: running (restored)")
mi.check_continues("default: restore", saved0, rb)

t.finish()
