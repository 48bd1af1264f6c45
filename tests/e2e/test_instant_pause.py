#!/usr/bin/python3
"""test_instant_pause - the instant snapshot (LIVE | INSTANT, virtsnap's 1 << 10)
of a running guest whose RAM is full of changing data, at 256 MiB and 1 GiB:
what the guest-visible pause is, and that the snapshot still holds one instant.

Asserted (correctness, never timing):
  - every call succeeds, leaves the guest running, and the memory file is a
    complete libvirt save image;
  - the guest runs while its memory is written: the RESUMED event comes in the
    first half of the call and heartbeats arrive between it and the return;
  - the frozen disk image of each snapshot holds a consistent counter state
    (tests/guest/read-counter);
  - reverting to a snapshot restores the memory of the moment of the call: the
    first heartbeat after the revert continues the sequence from inside the
    call's window, and the disk the reverted guest continues on stays
    consistent with the counter in its memory (no round lost or from the future);
  - a paused domain stays paused: no RESUMED event, no heartbeat during the
    call, state paused afterwards.

Reported as TAP notes (not asserted): per snapshot and as median/max, the pause
seen by the host (longest interval between heartbeat lines as they arrive on a
<serial type='unix'> socket this script reads; TCG freezes guest time while
paused, so the guest's own gap= under-reports), the pause from lifecycle events
(SUSPENDED -> RESUMED at a python-libvirt client), the call time, and the
AnonHugePages of QEMU's guest RAM mapping before each snapshot.

VIRTSNAP_INSTANT_RAM (default "256,1024") and VIRTSNAP_INSTANT_REPS (default 4)
change the sizes and the number of snapshots per size. VIRTSNAP_TEST_LATE_STOP=1,
passed on to the daemon, makes the walk-overlap order's stop (QEMU 10) come late
on purpose: each such snapshot is taken again stop first, and every check above
must still hold.

VIRTSNAP_INSTANT_HUGEPAGES=1 runs every guest with its RAM on 2 MiB huge pages
(<memoryBacking><hugepages/>, a private hugetlbfs given to virtsnapd as
hugetlbfs_mount): QEMU's populate walk and write protection then go by huge
page. Also asserted then: QEMU maps the guest's RAM from the huge page pool, in
the domain's directory of that mount (also after the revert), and no directory
is left once the guest is destroyed (the rest of the huge page support:
test_hugepages.py).
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
HUGEPAGES = os.environ.get("VIRTSNAP_INSTANT_HUGEPAGES") == "1"
env = vstest.Env(t, start_daemon=not HUGEPAGES)
import libvirt  # noqa: E402

INSTANT = 1 << 10
HB_MS = 5
RAMS = [int(x) for x in os.environ.get("VIRTSNAP_INSTANT_RAM", "256,1024").split(",") if x]
REPS = int(os.environ.get("VIRTSNAP_INSTANT_REPS", "4"))
# The daemon's VIRTSNAP_TEST_LATE_STOP=1 (QEMU 10): the walk-overlap order's stop comes after
# QEMU's own, every time, so each of those snapshots is taken again stop first.
LATE_STOP = os.environ.get("VIRTSNAP_TEST_LATE_STOP") == "1"
PAUSED_RAM = 192

# Room for one guest of the largest size and the one a revert starts.
hugepages = env.start_with_hugepages(2 * max(RAMS + [PAUSED_RAM]) + 64) if HUGEPAGES else None


# ---------------------------------------------------------------- host-side serial reader
class Serial:
    """Reads the guest's serial socket (reconnecting when QEMU is replaced);
    keeps (arrival monotonic, line)."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.conns = []   # index into lines where each connection's first line lands
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.stop:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
            except OSError:
                s.close()
                time.sleep(0.005)
                continue
            s.settimeout(0.2)
            self.conns.append(len(self.lines))
            buf = b""
            while not self.stop:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                now = time.monotonic()
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.append((now, line.decode(errors="replace").strip("\r")))
            s.close()

    def mark(self):
        return len(self.lines)

    def wait(self, pattern, timeout, start=0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        while time.monotonic() < deadline:
            while i < len(self.lines):
                m = rx.search(self.lines[i][1])
                if m:
                    return self.lines[i][0], m
                i += 1
            time.sleep(0.02)
        return None

    def heartbeats(self, t0, t1, start=0):
        """[(arrival, seq)] of VSHB lines that arrived in [t0, t1]."""
        out = []
        for ts, line in self.lines[start:]:
            if t0 <= ts <= t1:
                m = re.search(r"VSHB (\d+) ", line)
                if m:
                    out.append((ts, int(m.group(1))))
        return out


def longest_interval(hbs):
    if len(hbs) < 2:
        return None
    return max(b[0] - a[0] for a, b in zip(hbs, hbs[1:]))


def ms(x):
    return "-" if x is None else "%.1f" % (x * 1000.0)


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n=0"
    return "median %s ms, max %s ms (n=%d)" % (ms(statistics.median(xs)), ms(max(xs)), len(xs))


# ---------------------------------------------------------------- events
events = []
libvirt.virEventRegisterDefaultImpl()
econn = libvirt.open(env.uri())
econn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                             lambda c, d, ev, detail, o: events.append((time.monotonic(), d.name(), ev, detail)), None)
stop_loop = False


def loop():
    while not stop_loop:
        libvirt.virEventRunDefaultImpl()


threading.Thread(target=loop, daemon=True).start()
conn = env.connect()


def guest_ram_thp_kib(pid, ram_mib):
    """AnonHugePages of the mapping holding guest RAM (the anonymous one of RAM size)."""
    try:
        text = open("/proc/%d/smaps" % pid).read()
    except OSError:
        return None
    best = None
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", block)
        if not m:
            continue
        size = int(m.group(2), 16) - int(m.group(1), 16)
        if size < ram_mib << 20:
            continue
        h = re.search(r"AnonHugePages:\s+(\d+) kB", block)
        if h and (best is None or size < best[0]):
            best = (size, int(h.group(1)))
    return best[1] if best else None


def vda_path(dom):
    return env.disk_path(dom.name(), "vda")


def define(name, ram):
    sock = os.path.join(env.tmp, name + ".sock")
    xml = env.guest_xml(name, disks=(("vda", 16),), memory_mib=ram, heartbeat_ms=HB_MS,
                        fill_mib=max(64, ram - 160))
    xml = re.sub(r"<serial type='file'>\s*<source path='[^']*'/>",
                 "<serial type='unix'>\n      <source mode='bind' path='%s'/>" % sock, xml)
    if HUGEPAGES:
        xml = re.sub(r"(  <memory unit='MiB'>\d+</memory>\n)",
                     r"\1  <memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n", xml, count=1)
    path = os.path.join(env.tmp, name + ".xml")
    open(path, "w").write(xml)
    r = env.virsh("define", path)
    t.ok(r.ok, "%s: define (%d MiB, serial on a unix socket)" % (name, ram), r)
    return sock


def check_on_huge_pages(name, ram, label):
    """Asserts (hugepages runs) that the running guest's RAM is on the test's hugetlbfs."""
    pid = env.qemu_pid(name)
    path = vstest.qemu_memory_dir(pid)
    t.ok(path is not None and path.startswith(hugepages.mount + "/libvirt/qemu-embed-") and os.path.isdir(path),
         "%s: QEMU's RAM is a memory-backend-file in the domain's directory of the hugetlbfs" % label, path)
    kib = vstest.hugetlb_ram_kib(pid, path) if path else None
    t.ok(kib is not None and kib >= ram << 10,
         "%s: QEMU maps the guest's %d MiB from huge pages (Private_Hugetlb %s kB)" % (label, ram, kib))


def check_released(name):
    t.eq(vstest.hugetlbfs_dirs(hugepages.mount, name), [],
         "%s: no hugetlbfs directory of the domain is left after destroy" % name)


def snapshot_xml(name, mem, overlay):
    return ("<domainsnapshot><name>%s</name><memory snapshot='external' file='%s'/><disks>"
            "<disk name='vda' snapshot='external'><source file='%s'/></disk></disks></domainsnapshot>"
            % (name, mem, overlay))


def take(dom, serial, name, label):
    """One instant snapshot; returns its record."""
    mem = os.path.join(env.images, name + ".mem")
    overlay = os.path.join(env.images, name + ".qcow2")
    before_top = vda_path(dom)
    mark = serial.mark()
    t0 = time.monotonic()
    try:
        dom.snapshotCreateXML(snapshot_xml(name, mem, overlay), libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE | INSTANT)
        err = None
    except libvirt.libvirtError as e:
        err = str(e)
    t1 = time.monotonic()
    time.sleep(0.5)
    rec = {"name": name, "mem": mem, "frozen": before_top, "t0": t0, "t1": t1, "call": t1 - t0, "err": err}
    hbs = serial.heartbeats(t0 - 0.2, t1 + 0.4, start=max(0, mark - 100))
    rec["hb"] = longest_interval(hbs)
    rec["seq_at_pause"] = None
    # the last heartbeat before the call, the last one before the call returned
    rec["seq_before"] = max([s for ts, s in hbs if ts < t0], default=None)
    rec["seq_after"] = max([s for ts, s in hbs if ts <= t1], default=None)
    evs = [e for e in events if e[1] == dom.name() and t0 <= e[0] <= t1 + 0.5]
    sus = [e[0] for e in evs if e[2] == libvirt.VIR_DOMAIN_EVENT_SUSPENDED]
    res = [e[0] for e in evs if e[2] == libvirt.VIR_DOMAIN_EVENT_RESUMED]
    # The pause that holds the snapshot is the last one: where the daemon's stop came too
    # late for QEMU's capture (walk-overlap order, QEMU 10), QEMU's own stop and resume come
    # first and the memory is taken again, stop first.
    rec["pauses"] = len(sus)
    sus = sus[-1:]
    rec["ev"] = (res[-1] - sus[0]) if sus and res and res[-1] >= sus[0] else None
    # The guest runs on while its memory is written: resumed early in the call,
    # heartbeats arriving between the resume and the return.
    first_res = min([e for e in res if sus and e >= sus[0]], default=None)
    rec["ran_during"] = None
    if first_res is not None:
        start = sus[0] if sus[0] > t0 else t0
        rec["ran_during"] = (first_res - start <= (t1 - start) / 2,
                             len([1 for ts, _ in hbs if first_res < ts <= t1]))
    try:  # QEMU's own set-up time (RAM populate walk etc.), part of the pause when stopped first
        st = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED).get("setup_time")
        rec["setup"] = st / 1000.0 if st is not None else None
    except libvirt.libvirtError:
        rec["setup"] = None
    # The pause itself: the longest heartbeat interval overlapping the SUSPENDED..RESUMED
    # window (as the events arrived here, so widened a little). The longest interval over
    # the whole call also holds the stalls of the guest's writes to write-protected RAM
    # while QEMU copies it, which the guest sees as well.
    rec["hb_pause"] = None
    if sus and res:
        lo, hi = sus[0] - 0.05, res[-1] + 0.005
        spans = [b[0] - a[0] for a, b in zip(hbs, hbs[1:]) if b[0] >= lo and a[0] <= hi]
        rec["hb_pause"] = max(spans) if spans else None
        rec["seq_at_pause"] = max([s for ts, s in hbs if ts <= sus[0]], default=None)
    return rec


def run_size(ram):
    name = "ip%d" % ram
    sock = define(name, ram)
    env.virsh_ok("%s: start" % name, "start", name)
    if HUGEPAGES:
        check_on_huge_pages(name, ram, name)
    serial = Serial(sock)
    t.on_finish(lambda: setattr(serial, "stop", True))
    got = serial.wait(r"VSFILL done", timeout=120 + ram * 0.1)
    t.ok(got is not None, "%s: guest filled its RAM" % name, "\n".join(l for _, l in serial.lines[-10:]))
    if got is None:
        return
    dom = conn.lookupByName(name)
    time.sleep(2)
    tb = time.monotonic()
    time.sleep(2)
    base = longest_interval(serial.heartbeats(tb, time.monotonic()))
    t.note("%s: heartbeat every %d ms; idle baseline: longest arrival interval %s ms" % (name, HB_MS, ms(base)))

    recs = []
    for i in range(REPS):
        pid = env.qemu_pid(name)
        thp = guest_ram_thp_kib(pid, ram) if pid else None
        rec = take(dom, serial, "%s-s%d" % (name, i), name)
        rec["thp"] = thp
        recs.append(rec)
        t.ok(rec["err"] is None, "%s: instant snapshot %d" % (name, i), rec["err"])
        rd = rec["ran_during"]
        t.ok(rd is not None and rd[0] and rd[1] >= 3,
             "%s: snapshot %d: the guest ran while its memory was written" % (name, i),
             "resumed in the first half of the call, heartbeats between the resume and the return: %r" % (rd,))
        t.note("%s s%d: heartbeat-arrival pause %s ms (longest over the call %s ms), events pause %s ms, "
               "QEMU set-up %s ms, call %s ms, THP before %s MiB, %d SUSPENDED event(s)" %
               (name, i, ms(rec["hb_pause"]), ms(rec["hb"]), ms(rec["ev"]), ms(rec.get("setup")), ms(rec["call"]),
                "?" if thp is None else thp // 1024, rec["pauses"]))
        time.sleep(2.5)  # the guest rewrites RAM; any background work between snapshots runs here
    t.note("%s SUMMARY heartbeat-arrival pause: %s" % (name, summary([r["hb_pause"] for r in recs])))
    t.note("%s SUMMARY heartbeat longest over the call: %s" % (name, summary([r["hb"] for r in recs])))
    t.note("%s SUMMARY lifecycle events:  %s" % (name, summary([r["ev"] for r in recs])))
    t.note("%s SUMMARY QEMU set-up:       %s" % (name, summary([r.get("setup") for r in recs])))
    t.note("%s SUMMARY call time:         %s" % (name, summary([r["call"] for r in recs])))
    t.eq(env.domain_state(name), "running", "%s: guest running after the snapshots" % name)
    if LATE_STOP:
        # Once the daemon knows two walks of this QEMU (its second and third snapshots: the
        # first one's walk maps untouched RAM and is left out) it takes the walk-overlap order,
        # whose stop comes late on purpose: QEMU's own stop and resume come first, and the
        # memory is taken again stop first. The checks below hold those snapshots too. Two
        # SUSPENDED events, or three when the late stop found the guest resumed by QEMU.
        t.ok(len(recs) > 3 and all(r["pauses"] == 1 for r in recs[:3]) and all(r["pauses"] >= 2 for r in recs[3:]),
             "%s: every late stop from the fourth snapshot on was taken again stop first" % name,
             "SUSPENDED events per call: %r" % [r["pauses"] for r in recs])

    good = [r for r in recs if r["err"] is None]
    for r in good:
        with open(r["mem"], "rb") as f:
            head = f.read(16)
        t.eq(head, b"LibvirtQemudSave", "%s: memory file of %s is a complete save image" % (name, r["name"]))
        counter, consistent, out = env.read_counter(r["frozen"])
        t.ok(counter is not None and consistent, "%s: frozen disk of %s holds a consistent counter state" %
             (name, r["name"]), out)
    for r in good[:-1]:
        os.unlink(r["mem"])  # keep the disk from filling; the last one is reverted to
    if not good:
        return

    # Revert to the last snapshot: the memory must be that of the moment of the call.
    r = good[-1]
    conns = len(serial.conns)
    snap = dom.snapshotLookupByName(r["name"], 0)
    try:
        dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
        err = None
    except libvirt.libvirtError as e:
        err = str(e)
    t.ok(err is None, "%s: revert to %s" % (name, r["name"]), err)
    # the first heartbeat printed by the new QEMU (read on the serial socket's next connection)
    deadline = time.monotonic() + 60
    while len(serial.conns) <= conns and time.monotonic() < deadline:
        time.sleep(0.05)
    got = serial.wait(r"VSHB (\d+) ", timeout=60, start=serial.conns[conns]) if len(serial.conns) > conns else None
    seq = int(got[1].group(1)) if got else None
    t.ok(seq is not None and r["seq_before"] is not None and r["seq_before"] < seq <= r["seq_after"] + 1,
         "%s: reverted guest continues the heartbeat from inside the call (%s < %s <= %s + 1)" %
         (name, r["seq_before"], seq, r["seq_after"]))
    if r["seq_at_pause"] is not None:
        t.ok(seq is not None and seq <= r["seq_at_pause"] + 4,
             "%s: the memory is that of the stop, not of a later moment of the call (%s <= %s + 4)" %
             (name, seq, r["seq_at_pause"]))
    t.note("%s: reverted guest's first heartbeat seq %s; the last heartbeat before SUSPENDED was seq %s" %
           (name, seq, r["seq_at_pause"]))
    if HUGEPAGES:
        check_on_huge_pages(name, ram, name + " after the revert")
    time.sleep(1.5)
    env.virsh_ok("%s: destroy after the revert" % name, "destroy", name)
    counter, consistent, out = env.read_counter(vda_path(dom))
    t.ok(counter is not None and consistent,
         "%s: the reverted guest's counter continued consistently on the snapshot's disk (memory and disk "
         "of one instant)" % name, out)
    if HUGEPAGES:
        check_released(name)
    serial.stop = True
    os.unlink(r["mem"])
    return recs


all_recs = {}
for ram in RAMS:
    all_recs[ram] = run_size(ram)

# ---------------------------------------------------------------- a paused domain stays paused
name = "ipp"
sock = define(name, PAUSED_RAM)
env.virsh_ok("paused: start", "start", name)
serial = Serial(sock)
t.ok(serial.wait(r"VSGUEST ready", timeout=120) is not None, "paused: guest ready")
dom = conn.lookupByName(name)
env.virsh_ok("paused: suspend", "suspend", name)
time.sleep(0.5)
mark = serial.mark()
rec = take(dom, serial, "ipp-s0", name)
t.ok(rec["err"] is None, "paused: instant snapshot", rec["err"])
t.eq(env.domain_state(name), "paused", "paused: the domain stays paused")
resumed = [e for e in events if e[1] == name and e[2] == libvirt.VIR_DOMAIN_EVENT_RESUMED and e[0] >= rec["t0"]]
t.eq(resumed, [], "paused: no RESUMED event during the snapshot")
t.eq([l for _, l in serial.lines[mark:] if l.startswith("VSHB")], [], "paused: no heartbeat during the snapshot")
with open(rec["mem"], "rb") as f:
    t.eq(f.read(16), b"LibvirtQemudSave", "paused: complete save image")
env.virsh_ok("paused: resume", "resume", name)
t.ok(serial.wait(r"VSHB \d+", timeout=30, start=mark) is not None, "paused: heartbeat after resume")
serial.stop = True

stop_loop = True
t.finish()
