"""benchlib - shared pieces of the side-by-side benchmarks (bench_scale.py, bench_snapshot.py).

A Target is one daemon the same measurement runs against:
  - VirtsnapdTarget: build-bench/src/daemon/virtsnapd on its own temporary root;
  - LibvirtdTarget:  the host's libvirtd (qemu:///system), prepared by bench/setup.sh.
Run with Debian's /usr/bin/python3 (python3-libvirt), as root.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("VIRTSNAP_BENCH_BUILD", os.path.join(SOURCE_ROOT, "build-bench"))
# VIRTSNAP_BENCH_RESULTS: where result files go (ab_builds.sh keeps its runs out of bench/results).
RESULTS = os.environ.get("VIRTSNAP_BENCH_RESULTS", os.path.join(HERE, "results"))
# VIRTSNAP_BENCH_CONF: virtsnapd.conf lines for the bench's daemon, e.g. 'snapshot_image_format = "sparse"'.
DAEMON_CONF = os.environ.get("VIRTSNAP_BENCH_CONF", "")


def add_daemon_conf(line):
    """Appends a virtsnapd.conf line to VIRTSNAP_BENCH_CONF's for the daemons started after this
    (VirtsnapdTarget._spawn writes DAEMON_CONF). False, and nothing added, when VIRTSNAP_BENCH_CONF
    already sets that key: the explicit setting wins."""
    global DAEMON_CONF
    key = line.split("=", 1)[0].strip()
    if any(l.split("=", 1)[0].strip() == key for l in DAEMON_CONF.replace("\\n", "\n").splitlines()):
        return False
    DAEMON_CONF = "\n".join(x for x in (DAEMON_CONF, line) if x)
    return True


sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "e2e"))
import vstest  # noqa: E402  (shared daemon/QEMU helpers of the e2e harness)
import libvirt  # noqa: E402

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are reported by the scripts, not printed


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ms(s, digits=1):
    return "—" if s is None else ("%.*f" % (digits, s * 1000.0))


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def machine_summary():
    out = {}
    try:
        out["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        out["cpu"] = "?"
    out["cores"] = os.cpu_count()
    try:
        out["mem_gib"] = round(int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 2**20)
    except (OSError, StopIteration):
        out["mem_gib"] = "?"
    out["kernel"] = os.uname().release
    r = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    out["qemu"] = r.stdout.splitlines()[0] if r.returncode == 0 else "?"
    out["loadavg"] = open("/proc/loadavg").read().split()[:3]
    return out


class Target:
    name = "?"
    uri = None

    def available(self):
        return True, ""

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def pid(self):
        return None

    def connect(self):
        return libvirt.open(self.uri)

    def restart_timed(self, probe, timeout=300):
        """Stops the daemon, starts it again, and returns the seconds from the start until
        probe(conn) succeeds on a fresh connection (None on timeout)."""
        self.stop()
        t0 = time.monotonic()
        self._spawn()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                c = libvirt.open(self.uri)
            except libvirt.libvirtError:
                time.sleep(0.002)
                continue
            try:
                probe(c)
                return time.monotonic() - t0
            except libvirt.libvirtError:
                time.sleep(0.002)
            finally:
                try:
                    c.close()
                except libvirt.libvirtError:
                    pass
        return None


class VirtsnapdTarget(Target):
    name = "virtsnapd"

    def __init__(self, binary=None, keep=False, extra_env=None):
        self.binary = binary or os.path.join(BUILD, "src", "daemon", "virtsnapd")
        self.tmp = tempfile.mkdtemp(prefix="vsbench-", dir="/var/tmp")
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(self.root)
        self.socket = os.path.join(self.root, "run", "virtsnapd-sock")
        self.uri = "qemu+unix:///system?socket=" + self.socket
        self.log = os.path.join(self.tmp, "virtsnapd.log")
        self.keep = keep
        self.proc = None
        self.extra_env = extra_env or {}

    def available(self):
        if not os.access(self.binary, os.X_OK):
            return False, "virtsnapd not built at %s (run bench/setup.sh)" % self.binary
        return True, ""

    def _spawn(self):
        if DAEMON_CONF:
            os.makedirs(os.path.join(self.root, "etc"), exist_ok=True)
            with open(os.path.join(self.root, "etc", "virtsnapd.conf"), "w") as f:
                f.write(DAEMON_CONF.replace("\\n", "\n") + "\n")
        env = dict(os.environ)
        env.setdefault("VIRTSNAP_KVM", "0")
        env.update(self.extra_env)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "--root", self.root], stdout=logf, stderr=logf, env=env,
                                     start_new_session=True)
        logf.close()

    def start(self, timeout=60):
        self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                libvirt.open(self.uri).close()
                return True
            except libvirt.libvirtError:
                time.sleep(0.02)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def qemu_pids(self):
        return vstest.qemu_pids(self.root)

    def cleanup(self):
        self.stop()
        for pid in self.qemu_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


class LibvirtdTarget(Target):
    name = "libvirtd"
    uri = "qemu:///system"
    PIDFILE = "/run/libvirtd.pid"

    def available(self):
        if not shutil.which("libvirtd"):
            return False, "libvirtd is not installed (bench/setup.sh installs it)"
        try:
            c = libvirt.open(self.uri)
            v = c.getLibVersion()
            c.close()
            self.version = "%d.%d.%d" % (v // 1000000, v // 1000 % 1000, v % 1000)
            return True, ""
        except libvirt.libvirtError as e:
            return False, "qemu:///system does not answer (%s); run bench/setup.sh" % e.get_error_message()

    def pid(self):
        try:
            p = int(open(self.PIDFILE).read().strip())
            os.kill(p, 0)
            return p
        except (OSError, ValueError):
            return None

    def _spawn(self):
        subprocess.run(["libvirtd", "-d"], check=False)

    def start(self, timeout=60):
        if self.pid() is None:
            self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                libvirt.open(self.uri).close()
                return True
            except libvirt.libvirtError:
                time.sleep(0.05)
        return False

    def stop(self):
        p = self.pid()
        if p is None:
            return
        os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(p, 0)
            except OSError:
                return
            time.sleep(0.01)
        os.kill(p, signal.SIGKILL)
        time.sleep(0.2)

    def cleanup(self):
        pass


def targets_from_args(which):
    """which: 'both', 'virtsnapd' or 'libvirtd' -> ([targets], [(name, reason) skipped])."""
    out, skipped = [], []
    if which in ("both", "virtsnapd"):
        t = VirtsnapdTarget()
        ok, why = t.available()
        (out.append(t) if ok else skipped.append((t.name, why)))
    if which in ("both", "libvirtd"):
        t = LibvirtdTarget()
        ok, why = t.available()
        (out.append(t) if ok else skipped.append((t.name, why)))
    return out, skipped


def md_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def text_table(headers, rows):
    cols = [headers] + [[str(c) for c in r] for r in rows]
    w = [max(len(row[i]) for row in cols) for i in range(len(headers))]
    out = ["  ".join(h.ljust(w[i]) for i, h in enumerate(headers)), "  ".join("-" * x for x in w)]
    for r in cols[1:]:
        out.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    return "\n".join(out)


def probe_parser(doc, reps):
    """The command line the raw-QMP probes share: --qemu, --ram MIB ..., --reps N."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--ram", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--reps", type=int, default=reps)
    return ap


def probe_args(parser):
    """A probe's parsed command line and `--qemu`'s version line, which heads and names
    its result file."""
    args = parser.parse_args()
    return args, subprocess.run([args.qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def version_tag(version):
    """A result file's suffix from `qemu --version`'s first line: "qemu-emulator-version-10-0-2"."""
    return "".join(c if c.isalnum() else "-" for c in version.split("(")[0].strip()).lower()


def write_result(name, text):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def write_probe_result(prefix, version, header, table):
    """Prints a probe's table and writes it, under `header`, to results/PREFIX-<version tag>.md."""
    print(table)
    print("written to", write_result(prefix + "-" + version_tag(version) + ".md", f"{header}\n\n{table}\n"))


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)
