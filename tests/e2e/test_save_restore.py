#!/usr/bin/python3
"""Save, restore and managed save through stock virsh and python-libvirt: the
image is libvirt 9.0's format (checked by an independent parser), the guest
continues from its saved RAM (heartbeat sequence, no reboot), failures leave
the guest running with no partial file, and domjobinfo/domjobabort work
during a save."""
import os
import re
import stat
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
import libvirt  # noqa: E402

HEADER = struct.Struct("<16sIIIII56s")   # spec §7: magic, version, data_len, was_running, compressed, cookieOffset


def parse_image(path):
    """An independent reader of libvirt 9.0's save image; returns a dict or raises."""
    with open(path, "rb") as f:
        raw = f.read(HEADER.size)
        magic, version, data_len, was_running, compressed, cookie_off, unused = HEADER.unpack(raw)
        data = f.read(data_len)
        stream = f.read(8)
    xml_len = cookie_off or data_len
    xml = data[:xml_len]
    cookie_area = data[xml_len:]
    return {
        "magic": magic, "version": version, "data_len": data_len, "was_running": was_running,
        "compressed": compressed, "cookie_off": cookie_off, "unused_zero": unused == b"\0" * 56,
        "xml": xml[:xml.index(b"\0")].decode(), "xml_len": xml.index(b"\0") + 1,
        "cookie": cookie_area[:cookie_area.index(b"\0")].decode() if cookie_off else None,
        "cookie_len": (cookie_area.index(b"\0") + 1) if cookie_off else 0,
        "padding_zero": cookie_area[(cookie_area.index(b"\0") + 1) if cookie_off else 0:].count(0) ==
        len(cookie_area) - ((cookie_area.index(b"\0") + 1) if cookie_off else 0),
        "stream": stream,
    }


def guest_xml(name, **kw):
    # append='on' keeps the serial log across QEMU restarts (restore).
    xml = env.guest_xml(name, **kw)
    return xml.replace("<source path='%s'/>" % env.serial_log(name),
                       "<source path='%s' append='on'/>" % env.serial_log(name))


def define(name, **kw):
    path = os.path.join(env.tmp, name + ".xml")
    with open(path, "w") as f:
        f.write(guest_xml(name, **kw))
    env.virsh_ok("define " + name, "define", path)
    return path


def readies(name):
    return env.serial_text(name).count("VSGUEST ready")


def last_hb(name):
    hb = env.heartbeats(name)
    return hb[-1][0] if hb else None


def boot(name):
    start = len(env.serial_text(name))
    env.virsh_ok("start " + name, "start", name)
    t.ok(env.wait_serial(name, r"VSGUEST ready", start=start) is not None, name + " boots", env.serial_text(name)[-2000:])
    time.sleep(1.0)


def check_continues(name, frozen, readies_before, what):
    """The guest goes on from the saved heartbeat, without rebooting."""
    count, seq_before = frozen
    deadline = time.time() + 30
    nxt = []
    while time.time() < deadline:
        nxt = [s for s, _, _ in env.heartbeats(name)][count:count + 3]
        if len(nxt) == 3:
            break
        time.sleep(0.2)
    t.ok(len(nxt) == 3 and nxt[0] in (seq_before + 1, seq_before + 2) and nxt == sorted(nxt),
         what + ": heartbeat continues after seq %s" % seq_before, "next=%r" % nxt)
    t.eq(readies(name), readies_before, what + ": guest did not reboot")


def state(name):
    return env.virsh("domstate", name, "--reason").out.strip()


def freeze_seq(name):
    """(heartbeats so far, last seq) once the save has stopped the guest."""
    hb = env.heartbeats(name)
    return len(hb), (hb[-1][0] if hb else None)


# ---------------------------------------------------------------------------
define("g1")
boot("g1")

# ---- virsh save / restore ----
img = os.path.join(env.images, "g1.save")
env.virsh_ok("virsh save", "save", "g1", img)
seq = freeze_seq("g1")
rb = readies("g1")
t.eq(state("g1"), "shut off (saved)", "after save: shut off (saved)")
t.ok(os.path.exists(img) and open(img, "rb").read(16) == b"LibvirtQemudSave", "image starts with LibvirtQemudSave")
t.eq(stat.S_IMODE(os.stat(img).st_mode), 0o600, "image mode 0600")
try:
    h = parse_image(img)
    t.ok(h["version"] == 2 and h["compressed"] == 0 and h["was_running"] == 1 and h["unused_zero"],
         "header: version 2, raw, was_running 1, unused zero", repr({k: h[k] for k in h if k not in ("xml",)}))
    t.eq(h["data_len"], h["xml_len"] + h["cookie_len"] + 65536, "header: data_len = xml + cookie + 65536")
    t.eq(h["cookie_off"], h["xml_len"], "header: cookieOffset = xml_len")
    t.eq(h["cookie"], "<cookie>\n</cookie>\n", "cookie as libvirt writes it without a CPU")
    t.ok(h["padding_zero"], "padding is zeros")
    dom_xml = ET.fromstring(h["xml"])
    t.ok(dom_xml.tag == "domain" and dom_xml.findtext("name") == "g1" and dom_xml.get("id") is None,
         "XML: the domain, inactive form (no id)", h["xml"][:300])
    t.eq(h["stream"][:8], b"QEVM\x00\x00\x00\x03", "QEMU migration stream at 92 + data_len")
except Exception as e:  # a malformed image must fail the test, not crash it
    t.ok(False, "image parses per spec 7", repr(e))

env.virsh_ok("virsh restore", "restore", img)
t.eq(state("g1"), "running (restored)", "after restore: running (restored)")
check_continues("g1", seq, rb, "restore")
t.ok(os.path.exists(img), "restore keeps the image (libvirt semantics)")

# ---- restore --paused; save --paused ----
env.virsh_ok("save again", "save", "g1", img)
seq = freeze_seq("g1")
rb = readies("g1")
env.virsh_ok("restore --paused", "restore", img, "--paused")
t.eq(state("g1"), "paused (migrating)", "restore --paused: paused")
time.sleep(1)
t.eq(last_hb("g1"), seq[1], "paused guest prints nothing")
env.virsh_ok("resume", "resume", "g1")
check_continues("g1", seq, rb, "restore --paused + resume")

img2 = os.path.join(env.images, "g1-paused.save")
env.virsh_ok("save --paused", "save", "g1", img2, "--paused")
t.eq(parse_image(img2)["was_running"], 0, "save --paused: was_running 0 in the header")
env.virsh_ok("restore of a paused image", "restore", img2)
t.ok(state("g1").startswith("paused"), "image saved --paused restores paused", state("g1"))
env.virsh_ok("destroy", "destroy", "g1")
env.virsh_ok("restore --running overrides the header", "restore", img2, "--running")
t.eq(state("g1"), "running (restored)", "restore --running: running")

# ---- errors leave the guest running, no partial file ----
r = env.virsh("restore", img2)
t.ok(not r.ok and "domain 'g1' is already active" in r.err, "restore over a running domain refused", r)
bad = os.path.join(env.images, "missing-dir", "x.save")
r = env.virsh("save", "g1", bad)
t.ok(not r.ok and "Failed to create file '%s'" % bad in r.err, "save into a missing directory fails", r)
t.eq(state("g1"), "running (save canceled)", "guest running after the failed save")
t.ok(not os.path.exists(bad), "no file left behind")
r = env.virsh("save", "g1", "/dev/full")
t.ok(not r.ok and "No space left on device" in r.err, "save to a full device fails", r)
t.eq(env.domain_state("g1"), "running", "guest running after the full-device save")

# Mid-stream failure: the reader of a FIFO goes away after 256 KiB.
fifo = os.path.join(env.images, "pipe.save")
os.mkfifo(fifo)


def short_reader():
    with open(fifo, "rb") as f:
        f.read(256 * 1024)


th = threading.Thread(target=short_reader)
th.start()
seq = last_hb("g1")
r = env.virsh("save", "g1", fifo)
th.join()
t.ok(not r.ok and "domain save job" in r.err, "save whose target breaks mid-stream fails", r)
t.eq(env.domain_state("g1"), "running", "guest running after the mid-stream failure")
time.sleep(1)
t.ok((last_hb("g1") or 0) > (seq or 0), "guest keeps running (heartbeats)")
t.ok(stat.S_ISFIFO(os.stat(fifo).st_mode), "a target we did not create is left alone")

# ---- domjobinfo during a save, and domjobabort ----
slow_done = threading.Event()
got = {"bytes": 0}


def slow_reader():
    with open(fifo, "rb") as f:
        while not slow_done.is_set():
            b = f.read(64 * 1024)
            if not b:
                break
            got["bytes"] += len(b)
            time.sleep(0.02)


th = threading.Thread(target=slow_reader)
th.start()
saver = {}


def run_save():
    saver["r"] = env.virsh("save", "g1", fifo)


st = threading.Thread(target=run_save)
st.start()
info = None
deadline = time.time() + 30
while time.time() < deadline:
    ji = env.virsh("domjobinfo", "g1")
    if "Unbounded" in ji.out and "Memory processed" in ji.out:
        info = ji.out
        break
    time.sleep(0.2)
t.ok(info is not None and re.search(r"Operation:\s+Save", info or ""), "domjobinfo shows the save in progress",
     info)
env.virsh_ok("domjobabort", "domjobabort", "g1")
st.join(60)
slow_done.set()
th.join(10)
r = saver.get("r")
t.ok(r is not None and not r.ok and "operation aborted: domain save job: canceled by client" in r.err,
     "aborted save reports libvirt's error", r)
t.eq(env.domain_state("g1"), "running", "guest running after the aborted save")
os.unlink(fifo)

# ---- managed save ----
env.virsh_ok("virsh managedsave", "managedsave", "g1")
seq = freeze_seq("g1")
rb = readies("g1")
ms = os.path.join(env.root, "lib", "qemu", "save", "g1.save")
t.ok(os.path.exists(ms) and open(ms, "rb").read(16) == b"LibvirtQemudSave", "managed save image in the root")
t.ok(re.search(r"Managed save:\s+yes", env.virsh("dominfo", "g1").out), "dominfo: Managed save: yes")
t.ok("g1" in env.virsh("list", "--all", "--managed-save", "--name").out, "list --managed-save")
t.eq(state("g1"), "shut off (saved)", "managed save: shut off (saved)")
# Detected again by a restarted daemon.
env.daemon.stop()
t.ok(env.daemon.start(), "virsnapd restarts")
t.ok(re.search(r"Managed save:\s+yes", env.virsh("dominfo", "g1").out), "managed save detected at start-up")
env.virsh_ok("start from managed save", "start", "g1")
t.eq(state("g1"), "running (restored)", "start resumes the managed save")
check_continues("g1", seq, rb, "managed save start")
t.ok(not os.path.exists(ms), "managed save image removed after the start")
t.ok(re.search(r"Managed save:\s+no", env.virsh("dominfo", "g1").out), "dominfo: Managed save: no")

env.virsh_ok("managedsave again", "managedsave", "g1")
env.virsh_ok("managedsave-remove", "managedsave-remove", "g1")
t.ok(not os.path.exists(ms), "managedsave-remove deletes the image")
t.ok(re.search(r"Managed save:\s+no", env.virsh("dominfo", "g1").out), "no managed save after removal")
rb = readies("g1")
boot("g1")
t.eq(readies("g1"), rb + 1, "start without managed save boots afresh")

# ---- python-libvirt ----
libvirt.virEventRegisterDefaultImpl()
events = []
stop_loop = threading.Event()


def loop():
    while not stop_loop.is_set():
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()
conn = env.connect()
conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                            lambda c, d, ev, det, o: events.append((d.name(), ev, det)), None)
dom = conn.lookupByName("g1")
pimg = os.path.join(env.images, "py.save")
seq = None
rb = readies("g1")
try:
    dom.save(pimg)
    seq = freeze_seq("g1")
    t.eq(dom.state(), [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED], "python: dom.save()")
    conn.restore(pimg)
    t.eq(conn.lookupByName("g1").state(), [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_RESTORED],
         "python: conn.restore()")
    check_continues("g1", seq, rb, "python restore")
    stats = conn.lookupByName("g1").jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    t.ok(stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED, "python: completed job stats after restore",
         repr(stats))
except libvirt.libvirtError as e:
    t.ok(False, "python save/restore", str(e))
time.sleep(1)
t.ok(("g1", libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED) in events,
     "event STOPPED/SAVED", repr(events))
t.ok(("g1", libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED) in events,
     "event STARTED/RESTORED", repr(events))
try:
    conn.restore(pimg)
    t.ok(False, "python: restore over a running domain refused")
except libvirt.libvirtError as e:
    t.eq(e.get_error_code(), libvirt.VIR_ERR_OPERATION_INVALID, "python: restore over a running domain refused")
stop_loop.set()

# ---- transient domain goes away after save, comes back on restore ----
env.virsh_ok("destroy g1", "destroy", "g1")
define("t1")
boot("t1")
env.virsh_ok("undefine running t1 (now transient)", "undefine", "t1")
r = env.virsh("managedsave", "t1")
t.ok(not r.ok and "cannot do managed save for transient domain" in r.err, "no managed save for transient", r)
timg = os.path.join(env.images, "t1.save")
env.virsh_ok("save transient", "save", "t1", timg)
t.ok("t1" not in env.virsh("list", "--all", "--name").out.split(), "transient domain gone after save")
env.virsh_ok("restore transient", "restore", timg)
t.eq(env.virsh("dominfo", "t1").out.count("Persistent:     no"), 1, "restored domain is transient")
env.virsh_ok("destroy t1", "destroy", "t1")

# ---- bad images ----
part = os.path.join(env.images, "partial.save")
with open(img, "rb") as f:
    data = bytearray(f.read(200000))
data[:16] = b"LibvirtQemudPart"
with open(part, "wb") as f:
    f.write(data)
r = env.virsh("restore", part)
t.ok(not r.ok and "save image is incomplete" in r.err, "restore of a partial image refused", r)
junk = os.path.join(env.images, "junk.save")
with open(junk, "wb") as f:
    f.write(b"x" * 200)
r = env.virsh("restore", junk)
t.ok(not r.ok and "image magic is incorrect" in r.err, "restore of a non-image refused", r)

t.finish()
