"""vstest - the end-to-end test harness: a virtsnapd on a temporary root, the
test guest, and stock clients (virsh, python-libvirt) pointed at it.

Tests are TAP scripts run with Debian's /usr/bin/python3 (python3-libvirt is
installed for it). Typical use:

    import vstest
    t = vstest.Tap()
    env = vstest.Env(t)               # builds the guest (skips all if impossible), starts virtsnapd
    dom = env.define_guest("g1", disks=[("vda", 64)], heartbeat_ms=20)
    env.virsh("start", "g1")
    env.wait_serial("g1", "VSGUEST ready")
    ...
    t.finish()                        # stops virtsnapd, kills leftover QEMUs, prints the plan, exits

Environment: VIRTSNAP_BUILD_ROOT (meson build dir), VIRTSNAP_SOURCE_ROOT,
VIRTSNAP_GUEST_CACHE, VIRTSNAP_TEST_KEEP=1 keeps the temporary root,
VIRTSNAP_TEST_EMULATOR=<qemu binary> runs the guests on another QEMU (e.g. QEMU 10
from tests/qemu10/fetch-qemu10.sh; "qemu10" fetches it, skipping when unreachable).
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("VIRTSNAP_SOURCE_ROOT", os.path.dirname(os.path.dirname(HERE)))
BUILD_ROOT = os.environ.get("VIRTSNAP_BUILD_ROOT", os.path.join(SOURCE_ROOT, "build"))
GUEST_DIR = os.path.join(SOURCE_ROOT, "tests", "guest")


def qemu_pids(root):
    """Pids of the QEMUs a virtsnapd root has running (from their pidfiles)."""
    pids = []
    run = os.path.join(root, "run", "qemu")
    if os.path.isdir(run):
        for f in os.listdir(run):
            if f.endswith(".pid"):
                try:
                    with open(os.path.join(run, f)) as fh:
                        pids.append(int(fh.read().strip()))
                except (OSError, ValueError):
                    pass
    return pids


class Tap:
    """TAP output; finish() prints the plan and exits with the right status."""

    def __init__(self):
        self.count = 0
        self.failed = 0
        self._cleanups = []
        # A test that dies of an exception still destroys its guests, stops its
        # daemon and gives back what it took from the host (huge pages, mounts);
        # finish() and skip_all() have run them already, leaving nothing here.
        atexit.register(self._run_cleanups)

    def ok(self, cond, name, diag=""):
        self.count += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.count, name))
        if not cond:
            self.failed += 1
            for line in str(diag).splitlines()[-40:]:
                print("#   " + line)
        sys.stdout.flush()
        return bool(cond)

    def eq(self, got, expected, name):
        return self.ok(got == expected, name, "got:      %r\nexpected: %r" % (got, expected))

    def skip(self, name, reason):
        self.count += 1
        print("ok %d - %s # SKIP %s" % (self.count, name, reason))
        sys.stdout.flush()

    def note(self, text):
        for line in str(text).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def skip_all(self, reason):
        print("1..0 # SKIP " + reason)
        sys.stdout.flush()
        self._run_cleanups()
        os._exit(0)

    def on_finish(self, fn):
        self._cleanups.append(fn)

    def _run_cleanups(self):
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # cleanup must not hide results
                print("# cleanup error: %s" % e)

    def finish(self):
        self._run_cleanups()
        print("1..%d" % self.count)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


def relays_holding(prefix, wait=3.0):
    """Pids of virtsnap-relay processes with a file under `prefix` open (after up to `wait` s)."""
    deadline = time.time() + wait
    while True:
        pids = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != "virtsnap-relay":
                        continue
                for fd in os.listdir("/proc/%s/fd" % pid):
                    try:
                        if os.readlink("/proc/%s/fd/%s" % (pid, fd)).startswith(prefix):
                            pids.append(int(pid))
                            break
                    except OSError:
                        pass
            except OSError:
                pass
        if not pids or time.time() >= deadline:
            return pids
        time.sleep(0.2)


def build_guest():
    """Returns (kernel, initrd) of the test guest, or None with a reason."""
    cache = os.environ.get("VIRTSNAP_GUEST_CACHE", os.path.join(GUEST_DIR, "cache"))
    r = subprocess.run([os.path.join(GUEST_DIR, "build-guest.sh"), cache], capture_output=True, text=True)
    if r.returncode == 77:
        return None, "test guest cannot be built (Debian mirror unreachable)"
    if r.returncode != 0:
        return None, "build-guest.sh failed: " + r.stderr[-500:]
    return (os.path.join(cache, "vmlinuz"), os.path.join(cache, "initramfs.img")), ""


class Result:
    def __init__(self, cp):
        self.rc = cp.returncode
        self.out = cp.stdout
        self.err = cp.stderr

    @property
    def ok(self):
        return self.rc == 0

    def __repr__(self):
        return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.out, self.err)


class Daemon:
    """One virtsnapd process on a root directory."""

    def __init__(self, root, binary=None, extra_env=None):
        self.root = root
        self.binary = binary or os.path.join(BUILD_ROOT, "src", "daemon", "virtsnapd")
        self.extra_env = extra_env or {}
        self.proc = None
        self.socket = os.path.join(root, "run", "virtsnapd-sock")
        self.socket_ro = os.path.join(root, "run", "virtsnapd-sock-ro")
        self.log = os.path.join(root, "virtsnapd.log")

    def start(self, timeout=30, env=None):
        e = dict(os.environ)
        e.update(self.extra_env)
        e.update(env or {})
        e.setdefault("VIRTSNAP_KVM", "0")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "--root", self.root], stdout=logf, stderr=logf, env=e,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.socket) and self.proc.poll() is None:
                r = subprocess.run(["virsh", "-c", self.uri(), "uri"], capture_output=True, text=True)
                if r.returncode == 0:
                    return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        return False

    def uri(self, read_only=False):
        return "qemu+unix:///system?socket=" + (self.socket_ro if read_only else self.socket)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class HugePagesUnavailable(Exception):
    pass


def meminfo(key):
    """A /proc/meminfo value (kB, or a count for HugePages_*)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class HugePages:
    """2 MiB huge pages for guests whose RAM is on hugetlbfs (<memoryBacking><hugepages/>).

    reserve() adds `mib` to vm.nr_hugepages under a lock (so tests running in parallel add
    up instead of overwriting each other) and mounts a private hugetlbfs; release() gives
    both back. Raises HugePagesUnavailable (with the reason) when not root or when the
    kernel cannot provide the pages."""

    LOCK = "/run/lock/virtsnap-hugepages.lock"
    NR = "/proc/sys/vm/nr_hugepages"

    def __init__(self, mib):
        self.pages = (mib + 1) // 2
        self.added = 0
        self.mount = None

    def _adjust(self, delta):
        import fcntl
        os.makedirs(os.path.dirname(self.LOCK), exist_ok=True)
        with open(self.LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(self.NR) as f:
                now = int(f.read())
            with open(self.NR, "w") as f:
                f.write(str(max(0, now + delta)))
            with open(self.NR) as f:
                return int(f.read()) - now

    def reserve(self):
        if os.geteuid() != 0:
            raise HugePagesUnavailable("reserving huge pages needs root")
        if meminfo("Hugepagesize") != 2048:
            raise HugePagesUnavailable("the default huge page size is not 2 MiB")
        self.added = self._adjust(self.pages)
        if self.added < self.pages:
            got = self.added
            self.release()
            raise HugePagesUnavailable("the kernel gave %d of %d huge pages" % (got, self.pages))
        self.mount = tempfile.mkdtemp(prefix="virtsnap-hugetlbfs-")
        r = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", self.mount],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.release()
            raise HugePagesUnavailable("cannot mount hugetlbfs: " + r.stderr.strip())
        return self

    def release(self):
        if self.mount:
            # Lazily: a QEMU still dying keeps its (unlinked) RAM file mapped.
            subprocess.run(["umount", "-l", self.mount], capture_output=True)
            try:
                os.rmdir(self.mount)
            except OSError:
                pass
            self.mount = None
        if self.added:
            self._adjust(-self.added)
            self.added = 0


def qemu_memory_dir(pid):
    """The mem-path of QEMU's memory-backend-file (its /proc cmdline), or None."""
    try:
        argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0") if pid else []
    except OSError:
        argv = []
    for a in argv:
        m = re.search(rb'"qom-type":"memory-backend-file".*"mem-path":"([^"]+)"', a)
        if m:
            return m.group(1).decode()
    return None


def hugetlb_ram_kib(pid, directory):
    """Private_Hugetlb (kB) of QEMU's mapping of a file in `directory` (smaps), or None."""
    try:
        text = open("/proc/%d/smaps" % pid).read()
    except OSError:
        return None
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        if (directory + "/") in block.split("\n", 1)[0]:
            m = re.search(r"Private_Hugetlb:\s+(\d+) kB", block)
            return int(m.group(1)) if m else None
    return None


def hugetlbfs_dirs(mount, name):
    """The domain directories of `name` (<id>-<name>) under a hugetlbfs mount's libvirt/."""
    base = os.path.join(mount, "libvirt")
    out = []
    for sub in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        out += [os.path.join(base, sub, d) for d in sorted(os.listdir(os.path.join(base, sub)))
                if re.fullmatch(r"-?\d+-" + re.escape(name[:20]), d)]
    return out


class Env:
    """A temporary root with a running virtsnapd and the test guest."""

    def __init__(self, tap, start_daemon=True, need_guest=True, daemon_env=None):
        self.t = tap
        if not os.path.exists(os.path.join(BUILD_ROOT, "src", "daemon", "virtsnapd")):
            tap.skip_all("virtsnapd is not built in " + BUILD_ROOT)
        self.kernel = self.initrd = None
        if need_guest:
            guest, why = build_guest()
            if not guest:
                tap.skip_all(why)
            self.kernel, self.initrd = guest
        self.emulator = os.environ.get("VIRTSNAP_TEST_EMULATOR", "/usr/bin/qemu-system-x86_64")
        if self.emulator == "qemu10":
            r = subprocess.run([os.path.join(SOURCE_ROOT, "tests", "qemu10", "fetch-qemu10.sh")],
                               capture_output=True, text=True)
            if r.returncode == 77:
                tap.skip_all("QEMU 10 cannot be fetched from bookworm-backports")
            if r.returncode != 0:
                tap.ok(False, "fetch QEMU 10", r.stderr)
                tap.finish()
            self.emulator = r.stdout.strip()
        self.tmp = tempfile.mkdtemp(prefix="virtsnap-e2e-")
        self.root = os.path.join(self.tmp, "root")
        self.images = os.path.join(self.tmp, "images")
        os.makedirs(self.root)
        os.makedirs(self.images)
        self.daemon = Daemon(self.root, extra_env=daemon_env)
        tap.on_finish(self.cleanup)
        if start_daemon and not self.daemon.start():
            tap.ok(False, "virtsnapd starts", self.daemon.log_text())
            tap.finish()

    def write_conf(self, text):
        """Replaces the daemon's virtsnapd.conf (read when it starts)."""
        path = os.path.join(self.root, "etc", "virtsnapd.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def start_with_hugepages(self, mib):
        """For an Env made with start_daemon=False: reserves `mib` of 2 MiB huge pages on a
        private hugetlbfs (released at the end; the whole test skips when they cannot be had),
        gives virtsnapd the mount as hugetlbfs_mount and starts it. Returns the HugePages."""
        pages = HugePages(mib)
        try:
            pages.reserve()
        except HugePagesUnavailable as e:
            self.t.skip_all(str(e))
        self.t.on_finish(pages.release)
        self.write_conf('hugetlbfs_mount = "%s"\n' % pages.mount)
        if not self.daemon.start():
            self.t.ok(False, "virtsnapd starts with hugetlbfs_mount", self.daemon.log_text())
            self.t.finish()
        return pages

    # ---- clients ----
    def uri(self, read_only=False):
        return self.daemon.uri(read_only)

    def virsh(self, *args, read_only=False, timeout=300, input=None):
        cmd = ["virsh", "-q", "-c", self.uri(read_only)] + [str(a) for a in args]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        return Result(cp)

    def virsh_ok(self, name, *args, **kw):
        r = self.virsh(*args, **kw)
        self.t.ok(r.ok, name, "virsh %s\n%r" % (" ".join(map(str, args)), r))
        return r

    def abort_snapshot_mid_stream(self, dom, *snapshot_args, timeout=600):
        """Runs `virsh snapshot-create-as DOM ARGS` in a thread and sends
        domjobabort as soon as domjobinfo shows memory being written.
        Returns (whether virsh accepted the abort, the snapshot's Result);
        a snapshot that finished before the abort landed returns False."""
        import threading
        out = {}
        th = threading.Thread(
            target=lambda: out.update(r=self.virsh("snapshot-create-as", dom, *snapshot_args, timeout=timeout)))
        th.start()
        aborted = False
        while th.is_alive():
            r = self.virsh("domjobinfo", dom)
            if r.ok and "Memory processed" in r.out:
                aborted = self.virsh("domjobabort", dom).ok
                break
            time.sleep(0.02)
        th.join()
        return aborted, out["r"]

    def connect(self, read_only=False):
        import libvirt
        if read_only:
            return libvirt.openReadOnly(self.uri(True))
        return libvirt.open(self.uri())

    # ---- images and domains ----
    def make_disk(self, name, size_mib=64, fmt="qcow2", backing=None):
        path = os.path.join(self.images, name)
        cmd = ["qemu-img", "create", "-q", "-f", fmt]
        if backing:
            cmd += ["-b", backing, "-F", "qcow2"]
        cmd += [path]
        if not backing or size_mib:
            cmd += ["%dM" % size_mib]
        subprocess.run(cmd, check=True)
        return path

    def serial_log(self, name):
        return os.path.join(self.tmp, name + ".serial")

    def guest_xml(self, name, disks=(("vda", 64),), memory_mib=192, heartbeat_ms=20, fill_mib=0,
                  counter=True, agent=False, mounts=(), extra_cmdline="", vcpus=1, fmt="qcow2"):
        """Domain XML for the test guest; disks = [(target, size_mib)] or [(target, path, fmt)]."""
        disk_xml = []
        dev_paths = []
        for i, d in enumerate(disks):
            target = d[0]
            if len(d) == 3:
                path, dfmt = d[1], d[2]
            else:
                path, dfmt = self.make_disk("%s-%s.%s" % (name, target, fmt), d[1], fmt), fmt
            disk_xml.append(
                "    <disk type='file' device='disk'>\n"
                "      <driver name='qemu' type='%s'/>\n"
                "      <source file='%s'/>\n"
                "      <target dev='%s' bus='virtio'/>\n"
                "    </disk>\n" % (dfmt, path, target))
            dev_paths.append("/dev/" + target)
        # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer
        # check can miss its ticks and panic at boot (seen in a CI run).
        cmdline = ["console=ttyS0", "quiet", "no_timer_check", "vs.heartbeat=%d" % heartbeat_ms]
        if fill_mib:
            cmdline.append("vs.fill=%d" % fill_mib)
        if counter and dev_paths:
            cmdline.append("vs.counter=" + ",".join(p for p in dev_paths if not any(p.endswith(m[0]) for m in mounts)))
        if mounts:
            cmdline.append("vs.mount=" + ",".join("/dev/%s:%s" % m for m in mounts))
        if agent:
            cmdline.append("vs.agent=1")
        if extra_cmdline:
            cmdline.append(extra_cmdline)
        agent_xml = ("    <channel type='unix'>\n"
                     "      <target type='virtio' name='org.qemu.guest_agent.0'/>\n"
                     "    </channel>\n") if agent else ""
        return ("<domain type='qemu'>\n"
                "  <name>%s</name>\n"
                "  <uuid>%s</uuid>\n"
                "  <memory unit='MiB'>%d</memory>\n"
                "  <vcpu>%d</vcpu>\n"
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
                "%s"
                "    <serial type='file'>\n"
                "      <source path='%s'/>\n"
                "      <target port='0'/>\n"
                "    </serial>\n"
                "%s"
                "  </devices>\n"
                "</domain>\n") % (name, uuidlib.uuid4(), memory_mib, vcpus, self.kernel, self.initrd,
                                   " ".join(cmdline), self.emulator, "".join(disk_xml), self.serial_log(name), agent_xml)

    def define_guest(self, name, **kw):
        xml = self.guest_xml(name, **kw)
        path = os.path.join(self.tmp, name + ".xml")
        with open(path, "w") as f:
            f.write(xml)
        r = self.virsh("define", path)
        if not r.ok:
            self.t.ok(False, "define " + name, r)
        return path

    def disk_path(self, name, target):
        """The current source of a disk, as virsh domblklist reports it."""
        r = self.virsh("domblklist", name)
        for line in r.out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == target:
                return parts[1]
        return None

    # ---- guest observation ----
    def serial_text(self, name):
        try:
            with open(self.serial_log(name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_serial(self, name, pattern, timeout=120, start=0):
        """Waits for a regex in the serial log (from byte offset start); returns the match or None."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = rx.search(self.serial_text(name)[start:])
            if m:
                return m
            time.sleep(0.2)
        return None

    def heartbeats(self, name):
        """[(seq, guest_ms, gap)] parsed from VSHB lines."""
        out = []
        for m in re.finditer(r"VSHB (\d+) ([\d.]+) gap=(\d+)", self.serial_text(name)):
            out.append((int(m.group(1)), float(m.group(2)), int(m.group(3))))
        return out

    def read_counter(self, image, ext4_file=None):
        """Runs tests/guest/read-counter; returns (counter or None, consistent bool, raw output)."""
        cmd = [os.path.join(GUEST_DIR, "read-counter"), image]
        if ext4_file:
            cmd += ["--ext4-file", ext4_file]
        r = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"counter=(\d+)", r.stdout)
        return (int(m.group(1)) if m else None), ("consistent=yes" in r.stdout), r.stdout + r.stderr

    def wait_counter(self, name, target="vda", timeout=60):
        """Waits until the guest's counter records reached `target`'s image (the
        writer starts in the background at boot; a loaded host delays it)."""
        deadline = time.time() + timeout
        while self.read_counter(self.disk_path(name, target))[0] is None and time.time() < deadline:
            time.sleep(0.5)

    def domain_state(self, name):
        r = self.virsh("domstate", name)
        return r.out.strip()

    def wait_state(self, name, state, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.domain_state(name) == state:
                return True
            time.sleep(0.2)
        return False

    def qemu_pids(self):
        return qemu_pids(self.root)

    def qemu_pid(self, name):
        """The pid in the domain's pid file, or None."""
        try:
            return int(open(os.path.join(self.root, "run", "qemu", name + ".pid")).read().strip())
        except (OSError, ValueError):
            return None

    def journals(self):
        """The job journals left in the state directory, sorted."""
        jdir = os.path.join(self.root, "lib", "qemu", "journal")
        return sorted(os.listdir(jdir)) if os.path.isdir(jdir) else []

    def cleanup(self):
        # Destroy what the test left running, stop the daemon, then make sure no QEMU survives.
        if self.daemon.proc and self.daemon.proc.poll() is None:
            r = self.virsh("list", "--name")
            for n in r.out.split():
                self.virsh("destroy", n)
            self.daemon.stop()
        for pid in self.qemu_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["pkill", "-9", "-f", self.tmp], capture_output=True)
        if not os.environ.get("VIRTSNAP_TEST_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("# kept " + self.tmp)


class CrashCheck:
    """virtsnapd killed at a journalled step (VIRTSNAP_TEST_CRASH_AT: the journal
    writer _exit(137)s, as SIGKILL would, right after the named record), then
    restarted without the hook; check() asserts what every recovery must leave."""

    def __init__(self, env, tap):
        self.env = env
        self.t = tap

    # ---- what the files and QEMU say ----
    @staticmethod
    def chain_of(path):
        import json
        r = subprocess.run(["qemu-img", "info", "-U", "--output=json", "--backing-chain", path],
                           capture_output=True, text=True)
        return [i["filename"] for i in json.loads(r.stdout)] if r.returncode == 0 else []

    @staticmethod
    def tags_of(path):
        import json
        r = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True, text=True)
        return [s["name"] for s in json.loads(r.stdout).get("snapshots", [])] if r.returncode == 0 else []

    def sources(self, dom, inactive=False):
        """{target: top source} from dumpxml."""
        r = self.env.virsh("dumpxml", *(["--inactive"] if inactive else []), dom)
        out = {}
        for m in re.finditer(r"<disk type='file' device='disk'>.*?<source file='([^']+)'.*?<target dev='(\w+)'",
                             r.out, re.S):
            out.setdefault(m.group(2), m.group(1))
        return out

    def qemu_open_images(self):
        files = set()
        for pid in self.env.qemu_pids():
            fd_dir = "/proc/%d/fd" % pid
            try:
                for fd in os.listdir(fd_dir):
                    try:
                        p = os.readlink(os.path.join(fd_dir, fd))
                    except OSError:
                        continue
                    if p.startswith(self.env.images + "/"):
                        files.add(p)
            except OSError:
                pass
        return files

    def snapshots(self, dom):
        r = self.env.virsh("snapshot-list", dom, "--name")
        return [n for n in r.out.split() if n]

    def current(self, dom):
        r = self.env.virsh("snapshot-current", dom, "--name")
        return r.out.strip() if r.ok else None

    # ---- the crash ----
    def run_with_crash(self, label, step, *virsh_args):
        """Runs `virsh virsh_args` against a daemon that dies at `step`, then
        restarts it; True when the daemon was killed at the step."""
        d = self.env.daemon
        d.stop()
        if not d.start(env={"VIRTSNAP_TEST_CRASH_AT": step}):
            self.t.ok(False, "%s: daemon starts with the hook" % label, d.log_text()[-2000:])
            return False
        r = self.env.virsh(*virsh_args, timeout=600)
        try:
            rc = d.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        killed = rc == 137
        if not killed and r.ok:
            self.t.note("%s: step not reached (rc=%r)" % (label, rc))
            d.stop()
        if not d.start():
            self.t.ok(False, "%s: daemon restarts" % label, d.log_text()[-3000:])
        return killed

    # ---- the invariants ----
    def check(self, label, dom, state, name=None, expect_exists=None, branches=False, known=()):
        """After a restart: the domain in `state`, no journal, every image referenced
        and clean, snapshots consistent with the files, dumpxml sources what QEMU
        has open. `branches`: the snapshots' own chains (branches a revert left,
        images a delete kept) count as referenced too, and so do the chains of
        the `known` images."""
        env, t = self.env, self.t
        t.ok(env.wait_state(dom, state, timeout=30), "%s: domain %s" % (label, state), env.domain_state(dom))
        t.eq(env.journals(), [], "%s: no journal left" % label)
        live, pers = self.sources(dom), self.sources(dom, inactive=True)
        referenced = set()
        for p in list(live.values()) + list(pers.values()):
            referenced.update(self.chain_of(p))
        names = self.snapshots(dom)
        xmls = {n: env.virsh("snapshot-dumpxml", dom, n).out for n in names}
        if branches:
            for x in xmls.values():
                for f in re.findall(r"<source file='([^']+)'", x):
                    referenced.update(self.chain_of(f) or [f])
        for f in known:
            if os.path.exists(f):
                referenced.update(self.chain_of(f) or [f])
        snap_ok = True
        diag = []
        for n, x in xmls.items():
            for f in re.findall(r"<memory snapshot='external' file='([^']+)'", x):
                referenced.add(f)
                if not os.path.exists(f) or open(f, "rb").read(16) != b"LibvirtQemudSave":
                    snap_ok = False
                    diag.append("%s: memory file %s missing or incomplete" % (n, f))
            for f in re.findall(r"<disk name='\w+' snapshot='external' type='file'>\s*(?:<driver [^>]*/>\s*)?"
                                r"<source file='([^']+)'", x):
                if f not in referenced or not os.path.exists(f):
                    snap_ok = False
                    diag.append("%s: overlay %s not in use" % (n, f))
            if "<memory snapshot='internal'/>" in x and not any(n in self.tags_of(p) for p in referenced
                                                                 if os.path.exists(p) and not p.endswith(".mem")):
                snap_ok = False
                diag.append("%s: internal snapshot missing in the images" % n)
        images = set(os.path.join(env.images, f) for f in os.listdir(env.images))
        t.eq(sorted(images - referenced), [], "%s: no file nothing references" % label)
        all_tags = set()
        for p in referenced:
            if os.path.exists(p) and not p.endswith(".mem"):
                all_tags.update(self.tags_of(p))
        t.ok(snap_ok and all_tags <= set(names), "%s: snapshot list consistent with the files" % label,
             "\n".join(diag) + "\ntags %r names %r" % (all_tags, names))
        if expect_exists is not None:
            t.eq(name in names, expect_exists,
                 "%s: snapshot %s %s" % (label, name, "exists" if expect_exists else "absent"))
        bad = []
        opened = self.qemu_open_images() if state != "shut off" else set()
        for p in referenced:
            if p.endswith(".mem") or not os.path.exists(p):
                continue
            for attempt in range(3 if p in opened else 1):
                r = subprocess.run(["qemu-img", "check", "-U", p], capture_output=True, text=True)
                # 3 = leaked clusters only: what -U reads of an image QEMU has open and is writing
                if r.returncode == 0 or (r.returncode == 3 and p in opened):
                    break
                time.sleep(0.5)  # -U raced with QEMU growing the image: read it again
            else:
                bad.append(p + ": " + r.stdout + r.stderr)
        t.eq(bad, [], "%s: qemu-img check of every image" % label)
        if state != "shut off":
            opened = self.qemu_open_images()
            tops_open = all(p in opened for p in live.values())
            chain_files = set()
            for p in live.values():
                chain_files.update(self.chain_of(p))
            t.ok(tops_open and opened <= chain_files, "%s: dumpxml sources are what QEMU has open" % label,
                 "live %r\nopen %r" % (live, sorted(opened)))
            t.eq(pers, {k: v for k, v in live.items()}, "%s: persistent definition follows the live disks" % label)

    def guest_progresses(self, label, dom):
        n = len(self.env.serial_text(dom))
        self.t.ok(self.env.wait_serial(dom, r"VSHB \d+", timeout=30, start=n) is not None, "%s: guest runs on" % label)
