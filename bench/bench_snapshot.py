#!/usr/bin/python3
"""bench_snapshot - snapshot creation of a running guest, virtsnapd and libvirtd side by side (issue 5).

For guest RAM of 256 MiB, 1 GiB and 4 GiB (--quick: 256 MiB) the test guest boots with
vs.fill = most of its RAM (pseudo-random, rewritten at 64 MiB/s) and a 10 ms heartbeat on
a <serial type='unix'> socket that this script reads. After `VSFILL done`, each snapshot
mode is measured (--reps times):

  disk-only     DISK_ONLY|ATOMIC, one external overlay
  internal      memory and disk inside the qcow2 (savevm)
  ext-mem       external memory file + overlay, guest paused for the memory (libvirt's default)
  ext-mem-live  the same with LIVE (libvirt: pre-copy; virtsnapd: snapshot_live_method)
  ext-mem-instant  LIVE|VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT (virtsnapd's flag 1<<10; not libvirt)

Per snapshot: the call's wall time; the guest pause from lifecycle events (SUSPENDED ->
RESUMED as received by a python-libvirt event loop); the pause seen from the guest: the
longest interval between consecutive VSHB lines as they arrive on the host (TCG freezes
guest time while paused, so the guest's own gap= under-reports; it is shown too); the
memory written (file size, or vm-state-size for internal) and the rate = size / write time
(write time = the paused span for ext-mem, whose memory is written while paused; else the
job's time_elapsed when the daemon reports a completed job; else the call time). Once per run: this disk's sequential write rate (dd 2 GiB, conv=fdatasync).
A mode a daemon refuses is reported with its error, not treated as a failure.

--hugepages backs the guests' RAM with hugetlbfs 2 MiB pages (<memoryBacking><hugepages/>, both
daemons): it raises /proc/sys/vm/nr_hugepages until the largest --ram + 64 MiB of pages are free
(and fails if the kernel gives fewer), mounts hugetlbfs (pagesize=2M) on /dev/hugepages if no such
mount exists (restarting a running libvirtd, which finds its mounts in /proc/mounts when it starts),
gives virtsnapd the mount as virtsnapd.conf's hugetlbfs_mount, and at the end (also on failure or
Ctrl-C) unmounts what it mounted and puts nr_hugepages back.

    /usr/bin/python3 bench/bench_snapshot.py [--quick] [--ram 256,1024,4096] [--reps N]
                                             [--modes disk-only,internal,...] [--only virtsnapd|libvirtd]
                                             [--hugepages] [--emulator QEMU] [--no-dd]

Run as root after bench/setup.sh. Writes bench/results/snapshot-<RAM tags>.md (+ .json);
with --hugepages snapshot-<RAM tags>-hugepages.md (+ .json).
"""
import argparse
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))
import benchlib as bl  # noqa: E402
from benchlib import libvirt  # noqa: E402
import vstest  # noqa: E402  (build_guest only)

INSTANT = 1 << 10  # virtsnap's VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT (src/conf/snapshot_flags.hh)
ALL_MODES = ["internal", "disk-only", "ext-mem", "ext-mem-live", "ext-mem-instant"]
HB_MS = 10

# ---------------------------------------------------------------- event loop
EVENTS = []  # (monotonic, domain name, event, detail)
_loop_started = False


def start_event_loop():
    global _loop_started
    if _loop_started:
        return
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()
    threading.Thread(target=run, daemon=True).start()
    _loop_started = True


def on_lifecycle(_conn, dom, event, detail, _opaque):
    EVENTS.append((time.monotonic(), dom.name(), event, detail))


# ---------------------------------------------------------------- serial reader
class Serial:
    """Reads the guest's serial socket; keeps (arrival monotonic, line)."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        s = None
        deadline = time.monotonic() + 60
        while not self.stop and time.monotonic() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                break
            except OSError:
                s.close()
                s = None
                time.sleep(0.01)
        if s is None:
            return
        s.settimeout(0.5)
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

    def wait(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = 0
        while time.monotonic() < deadline:
            while i < len(self.lines):
                if rx.search(self.lines[i][1]):
                    return self.lines[i]
                i += 1
            time.sleep(0.1)
        return None

    def heartbeats(self, t0, t1):
        """[(arrival, seq, gap)] of VSHB lines that arrived in [t0, t1]."""
        out = []
        for ts, line in list(self.lines):
            if t0 <= ts <= t1:
                m = re.search(r"VSHB (\d+) [\d.]+ gap=(\d+)", line)
                if m:
                    out.append((ts, int(m.group(1)), int(m.group(2))))
        return out


def hb_stats(hbs):
    """(longest arrival interval s, largest guest gap= ms, heartbeats lost by seq)"""
    if len(hbs) < 2:
        return None, None, None
    longest = max(b[0] - a[0] for a, b in zip(hbs, hbs[1:]))
    gap = max(h[2] for h in hbs)
    lost = sum(max(0, b[1] - a[1] - 1) for a, b in zip(hbs, hbs[1:]))
    return longest, gap, lost


# ---------------------------------------------------------------- helpers
def dd_rate(directory, mib=2048, direct=False):
    """MiB/s of dd writing `mib` MiB: through the page cache with fdatasync, or
    with O_DIRECT (8 MiB blocks), which is how sparse images are written."""
    path = os.path.join(directory, "dd-test")
    how = ["bs=8M", "count=%d" % (mib // 8), "oflag=direct"] if direct else ["bs=1M", "count=%d" % mib, "conv=fdatasync"]
    t0 = time.perf_counter()
    r = subprocess.run(["dd", "if=/dev/zero", "of=" + path] + how, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    try:
        os.unlink(path)
    except OSError:
        pass
    if r.returncode != 0:
        return None
    return mib / dt


EMULATOR = "/usr/bin/qemu-system-x86_64"


def set_emulator(path):
    global EMULATOR
    EMULATOR = path


def emulator_version():
    try:
        out = subprocess.run([EMULATOR, "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown QEMU"


# ---------------------------------------------------------------- --hugepages
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HUGETLBFS_DIR = "/dev/hugepages"
HUGEPAGE_KIB = 2048
HUGEPAGES_SLACK_MIB = 64
HUGEPAGES = False  # guest_xml(): <memoryBacking><hugepages/></memoryBacking>


def meminfo_hugepages():
    """{"HugePages_Total": n, "HugePages_Free": n, "HugePages_Rsvd": n, "HugePages_Surp": n, "Hugepagesize": KiB}"""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("HugePages_", "Hugepagesize")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


def _size_kib(text):
    """hugetlbfs' pagesize= option ("2M", "1G", "2097152") in KiB."""
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2).lower()
    return n // 1024 if not unit else n * {"k": 1, "m": 1024, "g": 1024 * 1024}[unit]


def hugetlbfs_mounts():
    """[(directory, page size KiB)] of the hugetlbfs mounts in /proc/mounts."""
    default_kib = meminfo_hugepages().get("Hugepagesize")
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 4 or fields[2] != "hugetlbfs":
                continue
            kib = default_kib
            for opt in fields[3].split(","):
                if opt.startswith("pagesize="):
                    kib = _size_kib(opt[len("pagesize="):])
            path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            out.append((path, kib))
    return out


class HugePages:
    """nr_hugepages and the hugetlbfs mount for a --hugepages run. setup() raises SystemExit with
    the reason when the pages or the mount cannot be had; restore() (idempotent, also registered
    with atexit) unmounts what setup() mounted and writes nr_hugepages' old value back."""

    def __init__(self, ram_mib):
        self.ram_mib = ram_mib
        self.need = -(-(ram_mib + HUGEPAGES_SLACK_MIB) * 1024 // HUGEPAGE_KIB)  # pages, rounded up
        self.old_nr = None   # nr_hugepages before setup(); None until read
        self.set_nr = None   # what setup() wrote, None if it did not have to
        self.got_nr = None   # what nr_hugepages read after that (the kernel may give fewer)
        self.mount = None
        self.mounted = False  # setup() mounted self.mount
        self.free_at_start = None
        self.restored = False

    def _read_nr(self):
        with open(NR_HUGEPAGES) as f:
            return int(f.read().strip())

    def _write_nr(self, n):
        with open(NR_HUGEPAGES, "w") as f:
            f.write("%d\n" % n)

    def _available(self):
        # HugePages_Free counts pages reserved by mappings not yet faulted in; those are not ours
        mi = meminfo_hugepages()
        return mi.get("HugePages_Free", 0) - mi.get("HugePages_Rsvd", 0)

    def setup(self):
        atexit.register(self.restore)
        mi = meminfo_hugepages()
        if mi.get("Hugepagesize") != HUGEPAGE_KIB:
            raise SystemExit("bench_snapshot --hugepages: the default huge page size is %s KiB, not %d KiB "
                             "(nr_hugepages and <hugepages/> use the default size)"
                             % (mi.get("Hugepagesize"), HUGEPAGE_KIB))
        self.old_nr = self._read_nr()
        avail = self.free_at_start = self._available()
        if avail < self.need:
            for attempt in range(2):
                self.set_nr = self._read_nr() + (self.need - self._available())
                bl.log("hugepages: nr_hugepages %d -> %d (%d free, need %d = %d MiB + %d MiB)" % (
                    self._read_nr(), self.set_nr, self._available(), self.need, self.ram_mib, HUGEPAGES_SLACK_MIB))
                try:
                    self._write_nr(self.set_nr)
                    self.got_nr = self._read_nr()
                except OSError as e:
                    raise SystemExit("bench_snapshot --hugepages: cannot write %s: %s" % (NR_HUGEPAGES, e))
                avail = self._available()
                if avail >= self.need or attempt:
                    break
                # the kernel found too few contiguous 2 MiB blocks: compact memory and ask once more
                try:
                    with open("/proc/sys/vm/compact_memory", "w") as f:
                        f.write("1\n")
                except OSError:
                    break
            if avail < self.need:
                mi = meminfo_hugepages()
                raise SystemExit("bench_snapshot --hugepages: asked for nr_hugepages=%d but the kernel gave %d "
                                 "(HugePages_Free %d, HugePages_Rsvd %d): %d 2 MiB pages free, %d needed for "
                                 "--ram %d MiB + %d MiB; free some memory or use a smaller --ram"
                                 % (self.set_nr, self._read_nr(), mi.get("HugePages_Free", 0),
                                    mi.get("HugePages_Rsvd", 0), avail, self.need, self.ram_mib,
                                    HUGEPAGES_SLACK_MIB))
            bl.log("hugepages: nr_hugepages now %d, %d pages free" % (self._read_nr(), avail))
        else:
            bl.log("hugepages: %d 2 MiB pages free (nr_hugepages %d), %d needed; nr_hugepages left as is"
                   % (avail, self.old_nr, self.need))
        mounts = [d for d, kib in hugetlbfs_mounts() if kib == HUGEPAGE_KIB]
        if mounts:
            self.mount = mounts[0]
            bl.log("hugepages: using the hugetlbfs mount %s" % self.mount)
        else:
            self.mount = HUGETLBFS_DIR
            os.makedirs(self.mount, exist_ok=True)
            if os.path.ismount(self.mount):
                raise SystemExit("bench_snapshot --hugepages: %s is already a mount point, but not of a "
                                 "2 MiB hugetlbfs" % self.mount)
            r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", self.mount],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit("bench_snapshot --hugepages: mount -t hugetlbfs on %s failed: %s"
                                 % (self.mount, r.stderr.strip()))
            self.mounted = True
            bl.log("hugepages: mounted hugetlbfs (pagesize=2M) on %s" % self.mount)

    def restore(self):
        if self.restored:
            return
        self.restored = True
        if self.mounted:
            r = subprocess.run(["umount", self.mount], capture_output=True, text=True)
            if r.returncode == 0:
                bl.log("hugepages: unmounted %s" % self.mount)
            else:
                bl.log("hugepages: WARNING: umount %s failed: %s" % (self.mount, r.stderr.strip()))
        if self.set_nr is not None and self.old_nr is not None:
            try:
                now = self._read_nr()
                if self.got_nr is not None and now != self.got_nr:
                    bl.log("hugepages: WARNING: nr_hugepages is %d, not the %d this run left it at: something "
                           "else changed it meanwhile; writing back %d all the same" % (now, self.got_nr, self.old_nr))
                self._write_nr(self.old_nr)
                bl.log("hugepages: nr_hugepages back to %d (now %d)" % (self.old_nr, self._read_nr()))
            except OSError as e:
                bl.log("hugepages: WARNING: could not restore nr_hugepages=%d: %s" % (self.old_nr, e))

    def summary(self):
        return {"page_kib": HUGEPAGE_KIB, "mount": self.mount, "mounted_by_bench": self.mounted,
                "pages_needed": self.need, "free_at_start": self.free_at_start,
                "nr_hugepages_before": self.old_nr, "nr_hugepages_set": self.set_nr,
                "nr_hugepages_during": self.got_nr}


def _exit_on_signal(signum, _frame):
    # SIGTERM/SIGHUP end the run like Ctrl-C does: the finally blocks destroy the guests and
    # restore nr_hugepages and the mount
    raise SystemExit(128 + signum)


def guest_xml(name, kernel, initrd, disk, sock, ram_mib, fill_mib):
    cmdline = "console=ttyS0 quiet vs.heartbeat=%d vs.fill=%d vs.counter=/dev/vda" % (HB_MS, fill_mib)
    # libvirt's order: memory, currentMemory, memoryBacking, vcpu
    backing = "  <memoryBacking>\n    <hugepages/>\n  </memoryBacking>\n" if HUGEPAGES else ""
    return ("<domain type='qemu'>\n"
            "  <name>%s</name>\n"
            "  <uuid>%s</uuid>\n"
            "  <memory unit='MiB'>%d</memory>\n"
            "%s"
            "  <vcpu>1</vcpu>\n"
            "  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n"
            "    <kernel>%s</kernel>\n"
            "    <initrd>%s</initrd>\n"
            "    <cmdline>%s</cmdline>\n"
            "  </os>\n"
            "  <features><acpi/></features>\n"
            "  <on_poweroff>destroy</on_poweroff>\n"
            "  <devices>\n"
            "    <emulator>%s</emulator>\n"
            "    <disk type='file' device='disk'>\n"
            "      <driver name='qemu' type='qcow2'/>\n"
            "      <source file='%s'/>\n"
            "      <target dev='vda' bus='virtio'/>\n"
            "    </disk>\n"
            "    <serial type='unix'>\n"
            "      <source mode='bind' path='%s'/>\n"
            "      <target port='0'/>\n"
            "    </serial>\n"
            "  </devices>\n"
            "</domain>\n") % (name, uuidlib.uuid4(), ram_mib, backing, kernel, initrd, cmdline, EMULATOR, disk, sock)


def current_vda(dom):
    import xml.etree.ElementTree as ET
    for d in ET.fromstring(dom.XMLDesc(0)).iter("disk"):
        tgt, src = d.find("target"), d.find("source")
        if tgt is not None and tgt.get("dev") == "vda" and src is not None:
            return src.get("file")
    return None


def vm_state_size(image, snap):
    r = subprocess.run(["qemu-img", "info", "-U", "--output=json", image], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    for s in json.loads(r.stdout).get("snapshots", []):
        if s.get("name") == snap:
            return s.get("vm-state-size")
    return None


def snapshot_request(mode, name, work):
    """(xml, flags, memory file or None) for a mode."""
    overlay = os.path.join(work, "%s.qcow2" % name)
    mem = os.path.join(work, "%s.mem" % name)
    disks = ("  <disks>\n    <disk name='vda' snapshot='external'>\n"
             "      <source file='%s'/>\n    </disk>\n  </disks>\n" % overlay)
    if mode == "internal":
        return "<domainsnapshot>\n  <name>%s</name>\n</domainsnapshot>\n" % name, 0, None
    if mode == "disk-only":
        return ("<domainsnapshot>\n  <name>%s</name>\n  <memory snapshot='no'/>\n%s</domainsnapshot>\n"
                % (name, disks), libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY |
                libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC, None)
    flags = {"ext-mem": 0, "ext-mem-live": libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE,
             "ext-mem-instant": libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE | INSTANT}[mode]
    xml = ("<domainsnapshot>\n  <name>%s</name>\n  <memory snapshot='external' file='%s'/>\n%s</domainsnapshot>\n"
           % (name, mem, disks))
    return xml, flags | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC, mem


def completed_job(dom):
    try:
        return dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except (libvirt.libvirtError, AttributeError):
        return {}


# ---------------------------------------------------------------- one snapshot
def measure(t, dom, serial, mode, name, work):
    xml, flags, mem = snapshot_request(mode, name, work)
    rec = {"mode": mode, "name": name}
    vda = current_vda(dom)
    time.sleep(1.0)
    t0 = time.monotonic()
    try:
        dom.snapshotCreateXML(xml, flags)
    except libvirt.libvirtError as e:
        rec["error"] = e.get_error_message()
        return rec
    t1 = time.monotonic()
    rec["call_s"] = t1 - t0
    time.sleep(1.0)  # late events and heartbeats
    evs = [e for e in EVENTS if e[1] == dom.name() and t0 <= e[0] <= t1 + 1.0]
    sus = [e[0] for e in evs if e[2] == libvirt.VIR_DOMAIN_EVENT_SUSPENDED]
    res = [e[0] for e in evs if e[2] == libvirt.VIR_DOMAIN_EVENT_RESUMED]
    if sus and res and res[-1] >= sus[0]:
        rec["pause_ev_s"] = res[-1] - sus[0]
    elif not sus:
        rec["pause_ev_s"] = 0.0  # no pause announced
    rec["events"] = [(round(e[0] - t0, 4), e[2], e[3]) for e in evs]
    longest, gap, lost = hb_stats(serial.heartbeats(t0 - 0.3, t1 + 1.0))
    rec["hb_longest_s"], rec["hb_guest_gap_ms"], rec["hb_lost"] = longest, gap, lost
    job = completed_job(dom)
    if job:
        rec["job_elapsed_s"] = job.get("time_elapsed", 0) / 1000.0 or None
        rec["job_memory_processed"] = job.get("memory_processed")
    size = None
    if mem and os.path.exists(mem):
        # The bytes on the disk: a sparse image (mapped-ram) leaves zero pages as holes.
        st = os.stat(mem)
        size = min(st.st_size, st.st_blocks * 512)
        os.unlink(mem)  # keep the disk from filling; the metadata stays
    elif mode == "internal" and vda:
        size = vm_state_size(vda, name)
    if size:
        rec["mem_bytes"] = size
        # write time: the paused span for the non-live mode (memory is written while paused),
        # else the daemon's completed-job time, else the call time
        if mode == "ext-mem" and rec.get("pause_ev_s"):
            wt = rec["pause_ev_s"]
        else:
            wt = rec.get("job_elapsed_s") or rec["call_s"]
        rec["write_s"] = wt
        rec["rate_mibs"] = size / 2**20 / wt
    if mode == "internal":
        try:  # do not let internal vmstates pile up in the image
            dom.snapshotLookupByName(name, 0).delete(0)
        except libvirt.libvirtError as e:
            rec["delete_error"] = e.get_error_message()
    return rec


# ---------------------------------------------------------------- one daemon
def run_target(t, kernel, initrd, rams, modes, reps, work_root):
    out = []
    if isinstance(t, bl.VirtsnapdTarget) and not t.start():
        return [{"target": t.name, "error": "virtsnapd did not start, see " + t.log}]
    econn = t.connect()
    cb = econn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle, None)
    conn = t.connect()
    try:
        for ram in rams:
            fill = ram - max(112, ram // 6)  # 256 -> 144: more OOM-kills the filler
            name = "vsbench-snap-%d" % ram
            work = os.path.join(work_root, "%s-%d" % (t.name, ram))
            os.makedirs(work, exist_ok=True)
            try:
                old = conn.lookupByName(name)
                if old.isActive():
                    old.destroy()
                old.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            except libvirt.libvirtError:
                pass
            disk = os.path.join(work, "vda.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "16M"], check=True)
            sock = os.path.join(work, "serial.sock")
            dom = conn.defineXML(guest_xml(name, kernel, initrd, disk, sock, ram, fill))
            serial = None
            try:
                t_boot = time.monotonic()
                dom.create()
                serial = Serial(sock)
                got = serial.wait(r"VSFILL done|Out of memory", timeout=120 + ram * 0.12)
                if not got or "VSFILL" not in got[1]:
                    out.append({"target": t.name, "ram": ram, "error": "guest did not report VSFILL done",
                                "serial_tail": [l for _, l in serial.lines[-5:]]})
                    continue
                bl.log("%s %d MiB: filled %d MiB in %.0f s" % (t.name, ram, fill, got[0] - t_boot))
                hp_free = None
                if HUGEPAGES:
                    mi = meminfo_hugepages()
                    hp_free = mi.get("HugePages_Free")
                    bl.log("%s %d MiB: HugePages_Free %s of %s while the guest runs" % (
                        t.name, ram, hp_free, mi.get("HugePages_Total")))
                # idle baseline: heartbeat arrival jitter with no snapshot
                time.sleep(3)
                tb = time.monotonic()
                longest, gap, lost = hb_stats(serial.heartbeats(tb - 3, tb))
                out.append({"target": t.name, "ram": ram, "mode": "(idle baseline, 3 s)", "hb_longest_s": longest,
                            "hb_guest_gap_ms": gap, "hb_lost": lost, "fill_mib": fill,
                            **({"hugepages_free": hp_free} if HUGEPAGES else {})})
                for mode in modes:
                    if mode == "ext-mem-instant" and isinstance(t, bl.LibvirtdTarget):
                        out.append({"target": t.name, "ram": ram, "mode": mode,
                                    "error": "not a libvirt flag (virtsnap extension)"})
                        continue
                    for rep in range(reps):
                        sname = "%s-%d" % (mode, rep)
                        rec = measure(t, dom, serial, mode, sname, work)
                        rec.update(target=t.name, ram=ram, rep=rep)
                        out.append(rec)
                        bl.log("%s %d MiB %s #%d: %s" % (t.name, ram, mode, rep, short(rec)))
                        if "error" in rec:
                            break
                        if not dom.isActive() or dom.info()[0] != libvirt.VIR_DOMAIN_RUNNING:
                            try:
                                dom.resume()
                            except libvirt.libvirtError:
                                pass
            finally:
                if serial:
                    serial.stop = True
                try:
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
                except libvirt.libvirtError as e:
                    bl.log("cleanup of %s: %s" % (name, e.get_error_message()))
                subprocess.run(["rm", "-rf", work])
    finally:
        try:
            econn.domainEventDeregisterAny(cb)
        except libvirt.libvirtError:
            pass
    return out


def short(rec):
    if "error" in rec:
        return "ERROR " + rec["error"]
    s = "call %s ms, pause(ev) %s ms, hb longest %s ms" % (
        bl.fmt_ms(rec.get("call_s")), bl.fmt_ms(rec.get("pause_ev_s")), bl.fmt_ms(rec.get("hb_longest_s")))
    if rec.get("rate_mibs"):
        s += ", %.0f MiB in %.2f s = %.0f MiB/s" % (rec["mem_bytes"] / 2**20, rec["write_s"], rec["rate_mibs"])
    return s


def report(records, skipped, disk_rate, args, direct_rate=None, hugepages=None):
    groups = {}
    order = []
    for r in records:
        key = (r.get("target"), r.get("ram"), r.get("mode", "(boot)"))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    headers = ["daemon", "RAM MiB", "mode", "n", "call ms", "pause (events) ms", "pause (heartbeat arrival) ms",
               "guest gap= ms", "memory MiB", "write MiB/s", "vs disk", "note"]
    rows = []
    for key in order:
        rs = groups[key]
        ok = [r for r in rs if "error" not in r]
        err = [r["error"] for r in rs if "error" in r]
        med = lambda k: bl.median([r.get(k) for r in ok])  # noqa: E731
        rate = med("rate_mibs")
        mem = med("mem_bytes")
        rows.append([key[0], key[1], key[2], len(ok),
                     bl.fmt_ms(med("call_s"), 0) if ok else "—",
                     bl.fmt_ms(med("pause_ev_s")) if ok else "—",
                     bl.fmt_ms(med("hb_longest_s")) if ok else "—",
                     ("%d" % med("hb_guest_gap_ms")) if ok and med("hb_guest_gap_ms") is not None else "—",
                     "%.0f" % (mem / 2**20) if mem else "—",
                     "%.0f" % rate if rate else "—",
                     "%.2f×" % (rate / disk_rate) if rate and disk_rate else "—",
                     ("unsupported/failed: " + err[0][:120]) if err else ""])
    m = bl.machine_summary()
    lines = ["# bench_snapshot, %s%s" % (time.strftime("%Y-%m-%d %H:%M"),
                                        ", guest RAM on hugetlbfs 2 MiB pages" if hugepages else ""), "",
             "Machine: %s, %s cores, %s GiB, kernel %s, %s, load %s" % (
                 m["cpu"], m["cores"], m["mem_gib"], m["kernel"], emulator_version(), " ".join(m["loadavg"])),
             "Guests' emulator: %s" % EMULATOR,
             "Command: `/usr/bin/python3 bench/bench_snapshot.py %s`" % " ".join(sys.argv[1:]),
             ] + ([
             "Guest RAM: hugetlbfs 2 MiB pages (--hugepages: <memoryBacking><hugepages/>, mount %s%s; "
             "nr_hugepages %s%s), not anonymous memory" % (
                 hugepages.mount, ", mounted by this run" if hugepages.mounted else "", hugepages.old_nr,
                 " -> %d during the run" % hugepages.got_nr if hugepages.got_nr is not None else " (enough free)"),
             ] if hugepages else []) + [
             "Disk sequential write (dd 2 GiB, conv=fdatasync): %s" % (
                 "%.0f MiB/s" % disk_rate if disk_rate else "not measured (--no-dd)"),
             "Disk sequential write with O_DIRECT (dd 2 GiB, bs=8M, oflag=direct): %s" % (
                 "%.0f MiB/s" % direct_rate if direct_rate else "not measured"),
             "Heartbeat every %d ms; medians over --reps=%d; 'vs disk' = write rate / dd rate." % (HB_MS, args.reps),
             "", bl.md_table(headers, rows), ""]
    for name, why in skipped:
        lines.append("- SKIPPED %s: %s" % (name, why))
    text = "\n".join(lines) + "\n"
    print(bl.text_table(headers, rows))
    tag = "-".join(str(r) for r in sorted({r.get("ram") for r in records if r.get("ram")}))
    if EMULATOR != "/usr/bin/qemu-system-x86_64":
        tag += "-" + re.sub(r"[^0-9]+", "-", emulator_version().split("(")[0]).strip("-")
    base = "snapshot-%s" % (tag or "none")
    if hugepages:
        base += "-hugepages"
    path = bl.write_result(base + ".md", text)
    bl.write_result(base + ".json", json.dumps({"machine": m, "args": vars(args), "argv": sys.argv[1:],
                                                "guest_ram": "hugetlbfs-2M" if hugepages else "anonymous",
                                                "hugepages": hugepages.summary() if hugepages else None,
                                                "disk_rate_mibs": disk_rate, "records": records,
                                                "skipped": skipped}, indent=1, default=str))
    print("\nwrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 MiB only, 2 repetitions")
    ap.add_argument("--ram", default=None, help="comma-separated MiB (default 256,1024,4096)")
    ap.add_argument("--reps", type=int, default=None, help="snapshots per mode (default 3, --quick 2)")
    ap.add_argument("--modes", default=",".join(ALL_MODES))
    ap.add_argument("--only", choices=("virtsnapd", "libvirtd"), default=None)
    ap.add_argument("--no-dd", action="store_true", help="skip the disk write measurement")
    ap.add_argument("--emulator", default=EMULATOR,
                    help="the guests' QEMU (e.g. tests/qemu10/cache/qemu-system-x86_64, which "
                         "tests/qemu10/fetch-qemu10.sh makes); results are tagged with its version")
    ap.add_argument("--hugepages", action="store_true",
                    help="back guest RAM with hugetlbfs 2 MiB pages (<memoryBacking><hugepages/>) on both "
                         "daemons; raises nr_hugepages for the run and restores it; results get -hugepages")
    args = ap.parse_args()
    set_emulator(os.path.abspath(args.emulator))
    rams = [int(x) for x in (args.ram or ("256" if args.quick else "256,1024,4096")).split(",")]
    args.reps = args.reps or (2 if args.quick else 3)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ALL_MODES:
            sys.exit("unknown mode %s (known: %s)" % (m, ", ".join(ALL_MODES)))
    if os.geteuid() != 0:
        sys.exit("bench_snapshot: run as root")
    guest, why = vstest.build_guest()
    if not guest:
        sys.exit("bench_snapshot: " + why)
    kernel, initrd = guest
    global HUGEPAGES
    hp = HugePages(max(rams)) if args.hugepages else None
    try:
        if hp:
            HUGEPAGES = True
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _exit_on_signal)
            hp.setup()  # before any guest starts
            line = 'hugetlbfs_mount = "%s"' % hp.mount
            if not bl.add_daemon_conf(line):
                bl.log("hugepages: VIRTSNAP_BENCH_CONF sets hugetlbfs_mount already; not adding '%s'" % line)
        run(args, kernel, initrd, rams, modes, hp)
    finally:
        if hp:
            hp.restore()


def run(args, kernel, initrd, rams, modes, hp):
    start_event_loop()
    targets, skipped = bl.targets_from_args(args.only or "both")
    if hp and hp.mounted:
        for t in targets:
            if isinstance(t, bl.LibvirtdTarget) and t.pid() is not None:
                # libvirtd looks for hugetlbfs mounts when it starts, so it does not know the new one
                bl.log("hugepages: restarting libvirtd so that it finds %s" % hp.mount)
                t.stop()
                if not t.start():
                    raise SystemExit("bench_snapshot --hugepages: libvirtd did not come back after its restart")
    import tempfile
    work_root = tempfile.mkdtemp(prefix="vsbench-snap-", dir="/var/tmp")
    disk_rate = direct_rate = None
    if not args.no_dd:
        bl.log("dd 2 GiB with fdatasync, then with O_DIRECT, in %s" % work_root)
        disk_rate = dd_rate(work_root)
        direct_rate = dd_rate(work_root, direct=True)
        bl.log("disk: %s MiB/s, O_DIRECT %s MiB/s" % (disk_rate and "%.0f" % disk_rate, direct_rate and "%.0f" % direct_rate))
    records = []
    try:
        for t in targets:
            bl.log("== %s (%s)" % (t.name, t.uri))
            try:
                records += run_target(t, kernel, initrd, rams, modes, args.reps, work_root)
            except libvirt.libvirtError as e:
                records.append({"target": t.name, "error": e.get_error_message()})
                bl.log("%s failed: %s" % (t.name, e.get_error_message()))
            finally:
                t.cleanup()
    finally:
        subprocess.run(["rm", "-rf", work_root])
    report(records, skipped, disk_rate, args, direct_rate, hp)


if __name__ == "__main__":
    main()
