#!/usr/bin/python3
"""test_memory_direct_io - virtsnapd.conf's memory_image_direct_io, through
stock virsh and python-libvirt, with the test guest.

The setting decides how a raw memory image written while the guest is paused
(non-live external memory snapshots, save, managed save) reaches the disk:
through virtsnap-relay, which reads QEMU's stream from a pipe and writes it
with O_DIRECT, or by QEMU itself through the page cache. "auto" (the default)
uses the relay when the guest's RAM exceeds the kernel's background-writeback
threshold; `virsh save --bypass-cache` always uses it. The daemon logs
"memory image streamed through virtsnap-relay" at INFO (module qemu.migration)
each time; the test counts those lines around every step.

  - configuration errors: an unknown value and a number stop virtsnapd at
    start-up with an error naming virtsnapd.conf (not "unknown setting");
  - "always": `virsh save` and `managedsave` go through the relay, write
    libvirt's raw image (format 0, was_running 1, complete magic) and the
    guest continues from the saved heartbeat after restore / start (no
    reboot); a non-live external memory snapshot goes through the relay,
    its overlay checks and is backed by the old image, and snapshot-revert
    brings back the snapshot's instant; a memory file on a 24 MiB tmpfs
    (the stream is larger) fails with VIR_ERR_OPERATION_FAILED "cannot write
    the memory image: No space left on device" (virsh and python-libvirt)
    and leaves no memory file, no overlay, no snapshot, the guest running on
    its old images; the next snapshot works; no relay outlives its call;
  - "never": `virsh save` writes without the relay, `save --bypass-cache`
    with it; both restore;
  - the default ("auto"): `virsh save` uses the relay iff the guest's RAM
    exceeds the threshold, computed here as the daemon computes it."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402
import memimage  # noqa: E402
from memimage import img_check, img_info  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t, start_daemon=False)
import libvirt  # noqa: E402

RAM_MIB = 192
RAM = RAM_MIB << 20
FILL_MIB = 64          # random pages: the stream is well over the small tmpfs
SMALL_MIB = 24
RELAY_LINE = "memory image streamed through virtsnap-relay"
CONF = os.path.join(env.root, "etc", "virtsnapd.conf")
mi = memimage.Checks(env, t, CONF)
# The relay's line is INFO; the default level is warning.
LOG_CONF = 'log_filters = "2:qemu.migration"\n'
MANAGED = os.path.join(env.root, "lib", "qemu", "save", "g1.save")
if os.environ.get("VIRTSNAP_LOG_LEVEL") or os.environ.get("VIRTSNAP_LOG_FILTERS"):
    # The environment's log settings win over the file's: make ours win there too.
    env.daemon.extra_env["VIRTSNAP_LOG_FILTERS"] = "2:qemu.migration"


# ---------------- helpers ----------------
def relay_lines():
    return env.daemon.log_text().count(RELAY_LINE)


def writeback_threshold():
    """qemu/memory_migration.cc page_cache_writeback_threshold, step by step."""
    def number(path):
        try:
            with open(path) as f:
                m = re.match(r"\s*(\d+)", f.read())
            return int(m.group(1)) if m else None
        except OSError:
            return None
    b = number("/proc/sys/vm/dirty_background_bytes")
    if b:
        return b
    ratio = number("/proc/sys/vm/dirty_background_ratio")
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemAvailable:\s*(\d+)", f.read())
    except OSError:
        m = None
    if ratio is None or not m:
        return None
    return int(m.group(1)) * 1024 // 100 * ratio


def relayed(label, before, expected, what="the memory image"):
    """The relay's log line appeared (once) or not since `before`."""
    n = relay_lines() - before
    if expected:
        t.eq(n, 1, "%s: %s streamed through virtsnap-relay (one more log line)" % (label, what))
    else:
        t.eq(n, 0, "%s: %s written without virtsnap-relay (no log line)" % (label, what))


def no_relay_left(label):
    t.eq(vstest.relays_holding(env.tmp), [], "%s: no virtsnap-relay left holding the test's files" % label)


def save_restore(label, *save_flags, expect_relay):
    """virsh save (with `save_flags`), the image checked, virsh restore, the guest continues."""
    rb = mi.readies()
    img = os.path.join(env.images, "g1-%s.save" % re.sub(r"\W+", "-", label))
    n = relay_lines()
    env.virsh_ok(("%s: virsh save %s" % (label, " ".join(save_flags))).strip(), "save", "g1", img, *save_flags)
    saved = mi.frozen()
    relayed(label, n, expect_relay, "the save image")
    t.eq(mi.state(), "shut off (saved)", "%s: shut off (saved)" % label)
    mi.check_raw_image(label, img)
    no_relay_left(label)
    env.virsh_ok("%s: virsh restore" % label, "restore", img)
    t.eq(mi.state(), "running (restored)", "%s: restore: running (restored)" % label)
    mi.check_continues("%s: restore" % label, saved, rb)


def memory_snapshot(name, mem=None, overlay=None):
    mem = mem or os.path.join(env.images, name + ".mem")
    overlay = overlay or os.path.join(env.images, "g1-vda." + name)
    r = env.virsh("snapshot-create-as", "g1", name, "--memspec", "file=%s,snapshot=external" % mem,
                  "--diskspec", "vda,snapshot=external,file=%s" % overlay)
    return r, mem, overlay


def check_snapshot(label, r, mem, overlay, top_before, n_before):
    """A successful non-live memory snapshot through the relay."""
    t.ok(r.ok, "%s: non-live external memory snapshot" % label, r)
    relayed(label, n_before, True)
    mi.check_raw_image("%s memory" % label, mem)
    t.eq(env.disk_path("g1", "vda"), overlay, "%s: the disk moved to the overlay" % label)
    good, out = img_check(overlay)
    chain = img_info(overlay, chain=True)
    t.ok(good and chain is not None and len(chain) >= 2 and chain[1]["filename"] == top_before,
         "%s: the overlay passes qemu-img check and is backed by the old image" % label, out + "\n%r" % chain)
    t.eq(env.domain_state("g1"), "running", "%s: guest running afterwards" % label)
    no_relay_left(label)


def guest_xml():
    # append='on' keeps the serial log across QEMU restarts (revert, restore).
    xml = env.guest_xml("g1", disks=(("vda", 16),), memory_mib=RAM_MIB, heartbeat_ms=20, fill_mib=FILL_MIB,
                        extra_cmdline="vs.fill_rate=1")
    return mi.serial_appended(xml)


# ================= 1. configuration errors (no guest needed) =================
for conf, label in (('memory_image_direct_io = "sometimes"\n', 'memory_image_direct_io = "sometimes"'),
                    ("memory_image_direct_io = 1\n", "memory_image_direct_io = 1")):
    mi.refuses_to_start(conf, label)

# ================= 2. "always" =================
mi.write_conf(LOG_CONF + 'memory_image_direct_io = "always"\n')
if not env.daemon.start():
    t.ok(False, 'virtsnapd starts with memory_image_direct_io = "always"', env.daemon.log_text()[-3000:])
    t.finish()
t.ok(True, 'virtsnapd starts with memory_image_direct_io = "always"')
mi.boot(guest_xml())
t.ok(env.wait_serial("g1", r"VSFILL done", timeout=120) is not None, "g1 filled %d MiB of its RAM" % FILL_MIB,
     env.serial_text("g1")[-1500:])
time.sleep(1.0)

# a. save / restore, managed save / start
save_restore("always: save", expect_relay=True)

rb = mi.readies()
n = relay_lines()
env.virsh_ok("always: virsh managedsave", "managedsave", "g1")
msaved = mi.frozen()
relayed("always: managedsave", n, True, "the managed save image")
mi.check_raw_image("always: managed save image", MANAGED)
no_relay_left("always: managedsave")
env.virsh_ok("always: start from the managed save", "start", "g1")
t.eq(mi.state(), "running (restored)", "always: start resumes the managed save")
mi.check_continues("always: managed save start", msaved, rb)
time.sleep(1.0)

# b. non-live external memory snapshot, then revert to it
vda0 = env.disk_path("g1", "vda")
n = relay_lines()
l0 = len(env.serial_text("g1"))
r, mem1, ov1 = memory_snapshot("s1")
l1 = len(env.serial_text("g1"))
window1 = (mi.last_seq(l0), mi.last_seq(l1))
check_snapshot("s1", r, mem1, ov1, vda0, n)
mi.progresses("s1")
time.sleep(2.0)  # the guest runs on well past s1

mi.revert_running("revert to s1", "s1", window1)
top = env.disk_path("g1", "vda")
chain = img_info(top, chain=True) if top else None
t.ok(chain is not None and len(chain) >= 2 and chain[1]["filename"] == vda0,
     "revert to s1: the new overlay is backed by s1's image", chain)

# c. ENOSPC: the memory file on a tmpfs smaller than the stream
small = os.path.join(env.tmp, "small")
os.makedirs(small)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % SMALL_MIB, "tmpfs", small],
                         capture_output=True, text=True)
if mounted.returncode != 0:
    t.skip("ENOSPC of the relay's write", "cannot mount a small tmpfs here: " + mounted.stderr.strip())
else:
    def unmount():
        if os.path.ismount(small):
            subprocess.run(["umount", "-l", small], capture_output=True)
    t.on_finish(unmount)
    ENOSPC_MSG = "cannot write the memory image: No space left on device"

    def after_enospc(label, files_before, snaps_before, top_before, n_before):
        relayed(label, n_before, True)
        t.eq(os.listdir(small), [], "%s: no memory file left on the tmpfs" % label)
        t.eq(mi.images(), files_before, "%s: no overlay left" % label)
        t.eq(mi.snap_names(), snaps_before, "%s: no snapshot listed" % label)
        t.eq(env.disk_path("g1", "vda"), top_before, "%s: the guest is still on its image" % label)
        t.eq(env.domain_state("g1"), "running", "%s: guest running" % label)
        mi.progresses(label)
        no_relay_left(label)

    top0 = env.disk_path("g1", "vda")
    files0, snaps0 = mi.images(), mi.snap_names()
    n = relay_lines()
    r, _, _ = memory_snapshot("full1", mem=os.path.join(small, "full1.mem"))
    t.ok(not r.ok and ENOSPC_MSG in r.err and "operation failed" in r.err,
         "ENOSPC (virsh): the snapshot fails with \"operation failed: %s\"" % ENOSPC_MSG, r)
    after_enospc("ENOSPC (virsh)", files0, snaps0, top0, n)

    xml = ("<domainsnapshot><name>full2</name><memory snapshot='external' file='%s'/><disks>"
           "<disk name='vda' snapshot='external'><source file='%s'/></disk></disks></domainsnapshot>" %
           (os.path.join(small, "full2.mem"), os.path.join(env.images, "g1-vda.full2")))
    n = relay_lines()
    conn = env.connect()
    try:
        conn.lookupByName("g1").snapshotCreateXML(xml, 0)
        code, msg = None, "succeeded"
    except libvirt.libvirtError as e:
        code, msg = e.get_error_code(), str(e)
    finally:
        conn.close()
    t.ok(code == libvirt.VIR_ERR_OPERATION_FAILED and ENOSPC_MSG in msg,
         "ENOSPC (python): VIR_ERR_OPERATION_FAILED (%d) \"%s\"" % (libvirt.VIR_ERR_OPERATION_FAILED, ENOSPC_MSG),
         "code=%r %s" % (code, msg))
    after_enospc("ENOSPC (python)", files0, snaps0, top0, n)

    # A snapshot with room works afterwards.
    n = relay_lines()
    r, mem2, ov2 = memory_snapshot("s2")
    check_snapshot("s2 after ENOSPC", r, mem2, ov2, top0, n)
    t.eq(sorted(mi.snap_names()), sorted(snaps0 + ["s2"]), "s2 after ENOSPC: listed")

# ================= 3. "never" =================
mi.restart_daemon(LOG_CONF + 'memory_image_direct_io = "never"\n', 'memory_image_direct_io = "never"')
t.eq(env.domain_state("g1"), "running", "never: the guest runs on across the daemon restart")
save_restore("never: save", expect_relay=False)
save_restore("never: save --bypass-cache", "--bypass-cache", expect_relay=True)

# ================= 4. the default ("auto") =================
mi.restart_daemon(LOG_CONF, "the default memory_image_direct_io (auto)")
threshold = writeback_threshold()
n = relay_lines()
label = "auto: save"
expect = threshold is not None and RAM > threshold
t.note("auto: guest RAM %d MiB, writeback threshold %s MiB: the relay is %sexpected" %
       (RAM_MIB, None if threshold is None else threshold >> 20, "" if expect else "not "))
rb = mi.readies()
img = os.path.join(env.images, "g1-auto.save")
env.virsh_ok("auto: virsh save", "save", "g1", img)
saved = mi.frozen()
threshold_after = writeback_threshold()
if (threshold_after is not None and RAM > threshold_after) != expect:
    # MemAvailable moved across the guest's RAM during the save: either answer is right.
    t.skip("auto: save: relay iff RAM > threshold", "the threshold crossed %d MiB during the save" % RAM_MIB)
else:
    relayed(label, n, expect, "the save image (RAM %s the threshold)" % ("above" if expect else "below"))
mi.check_raw_image(label, img)
no_relay_left(label)
env.virsh_ok("auto: virsh restore", "restore", img)
t.eq(mi.state(), "running (restored)", "auto: restore: running (restored)")
mi.check_continues("auto: restore", saved, rb)

t.finish()
