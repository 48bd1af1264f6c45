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
        cmdline = ["console=ttyS0", "quiet", "vs.heartbeat=%d" % heartbeat_ms]
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
