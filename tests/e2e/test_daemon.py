#!/usr/bin/python3
"""test_daemon - virtsnapd as a process, without a guest: one daemon per root
(the pid-file lock), socket modes and unix_sock_group, a clean SIGTERM (exit 0,
sockets and pid file gone), configuration errors, keepalive_interval = -1,
socket activation (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES as systemd passes
them), and `systemd-analyze verify` of the units in tools/systemd."""
import grp
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t, need_guest=False)
d = env.daemon
run_dir = os.path.join(env.root, "run")
pid_file = os.path.join(run_dir, "virtsnapd.pid")
conf_file = os.path.join(env.root, "etc", "virtsnapd.conf")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read_pid():
    with open(pid_file) as f:
        return int(f.read().strip())


def spawn(extra_env=None, args=None):
    e = dict(os.environ)
    e.setdefault("VIRTSNAP_KVM", "0")
    e.update(extra_env or {})
    return subprocess.run([d.binary, "--root", env.root] + (args or []), capture_output=True, text=True,
                          timeout=60, env=e)


def wait_for(cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


# ---- one daemon per root ----
t.eq(read_pid(), d.proc.pid, "the pid file holds the daemon's pid")
second = spawn()
t.ok(second.returncode != 0 and
     ("another virtsnapd (pid %d) is already running" % d.proc.pid) in second.stderr and
     pid_file in second.stderr,
     "a second virtsnapd on the same root refuses, naming the running one", second.stderr)
t.ok(d.proc.poll() is None and env.virsh("uri").ok, "the first daemon is unaffected")
t.eq(read_pid(), d.proc.pid, "the pid file still names the first daemon")

# ---- socket modes (defaults) ----
t.eq(oct(mode(d.socket)), oct(0o600), "read-write socket is 0600 by default")
t.eq(oct(mode(d.socket_ro)), oct(0o600), "read-only socket is 0600 by default")

# ---- SIGTERM: exit 0, sockets and pid file removed ----
rc = d.stop(signal.SIGTERM)
t.eq(rc, 0, "SIGTERM: virtsnapd exits with status 0")
t.ok(not os.path.exists(d.socket) and not os.path.exists(d.socket_ro), "SIGTERM removes both sockets")
t.ok(not os.path.exists(pid_file), "SIGTERM removes the pid file")

# ---- configuration: modes and group ----
if os.geteuid() == 0:
    try:
        group = grp.getgrnam("nogroup")
    except KeyError:
        group = grp.getgrgid(65534)
    with open(conf_file, "w") as f:
        f.write('unix_sock_group = "%s"\nunix_sock_rw_perms = "0660"\nunix_sock_ro_perms = "0640"\n' % group.gr_name)
    t.ok(d.start(), "virtsnapd starts with unix_sock_group and perms", d.log_text()[-2000:])
    st_rw, st_ro = os.stat(d.socket), os.stat(d.socket_ro)
    t.ok(st_rw.st_gid == group.gr_gid and st_ro.st_gid == group.gr_gid,
         "unix_sock_group: both sockets belong to group '%s'" % group.gr_name, (st_rw.st_gid, st_ro.st_gid))
    t.eq((oct(mode(d.socket)), oct(mode(d.socket_ro))), (oct(0o660), oct(0o640)),
         "unix_sock_rw_perms / unix_sock_ro_perms applied")
    t.eq(d.stop(), 0, "stops cleanly")
else:
    t.skip("unix_sock_group chown", "not root")

with open(conf_file, "w") as f:
    f.write('image_dir = "/tmp"\n')
r = spawn()
t.ok(r.returncode != 0 and "unknown setting 'image_dir'" in r.stderr,
     "image_dir is not a setting (libvirt has none; it was never used)", r.stderr)
with open(conf_file, "w") as f:
    f.write('unix_sock_group = "no-such-group-virtsnap"\n')
r = spawn()
t.ok(r.returncode != 0 and "unknown group 'no-such-group-virtsnap'" in r.stderr, "an unknown group is refused",
     r.stderr)

# ---- keepalive_interval = -1: idle clients are never pinged nor dropped ----
with open(conf_file, "w") as f:
    f.write("keepalive_interval = -1\nkeepalive_count = 0\n")
t.ok(d.start(), "virtsnapd starts with keepalive_interval = -1", d.log_text()[-2000:])


def packet(prog, proc, typ, serial, payload=b""):
    body = struct.pack(">IIiiII", prog, 1, proc, typ, serial, 0) + payload
    return struct.pack(">I", len(body) + 4) + body


s = socket.socket(socket.AF_UNIX)
s.connect(d.socket)
s.sendall(packet(0x20008086, 60, 0, 0, struct.pack(">i", 10)))  # SUPPORTS_FEATURE(PROGRAM_KEEPALIVE)
s.settimeout(2)
reply = s.recv(64)
# libvirtd's default interval is 5 s; this one never pings and never drops the client.
s.settimeout(7)
try:
    late = s.recv(64)
except socket.timeout:
    late = None
t.ok(len(reply) == 32 and late is None,
     "keepalive_interval = -1: a silent client gets no PING and is not dropped", repr(late))
s.sendall(packet(0x6b656570, 1, 2, 0))  # PING from the client
s.settimeout(2)
pong = s.recv(64)
t.ok(len(pong) == 28 and struct.unpack(">I", pong[12:16])[0] == 2, "its PING is still answered with PONG")
s.close()
t.eq(d.stop(), 0, "stops cleanly")
os.unlink(conf_file)


# ---- socket activation ----
def listening(path):
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


# Runs in the child: moves the inherited sockets to 3.. and becomes virtsnapd with
# LISTEN_PID naming itself (execv keeps the pid), as systemd's service start does.
ACTIVATE = """
import os, sys
fds = [int(x) for x in sys.argv[1].split(",") if x]
high = [os.dup(fd) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 100 + i)
    os.close(fd)
for i in range(len(high)):
    os.dup2(100 + i, 3 + i)
    os.close(100 + i)
    os.set_inheritable(3 + i, True)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def activated(socks, names):
    """virtsnapd started as systemd would start it for its socket units."""
    fds = [sk.fileno() for sk in socks]
    e = dict(os.environ)
    e.update({"VIRTSNAP_KVM": "0", "LISTEN_FDS": str(len(socks))})
    if names:
        e["LISTEN_FDNAMES"] = ":".join(names)
    logf = open(d.log, "ab")
    return subprocess.Popen(["/usr/bin/python3", "-c", ACTIVATE, ",".join(map(str, fds)), d.binary,
                             "--root", env.root], env=e, pass_fds=fds, stdout=logf, stderr=logf,
                            start_new_session=True)


os.makedirs(run_dir, exist_ok=True)
rw, ro = listening(d.socket), listening(d.socket_ro)
proc = activated([rw, ro], ["virtsnapd.socket", "virtsnapd-ro.socket"])
rw.close()
ro.close()
ok = wait_for(lambda: env.virsh("uri").ok or proc.poll() is not None)
t.ok(ok and proc.poll() is None, "socket-activated virtsnapd serves the passed read-write socket",
     d.log_text()[-2000:])
r = env.virsh("list", "--all", read_only=True)
t.ok(r.ok, "and the passed read-only socket", r)
xml = os.path.join(env.tmp, "ro.xml")
with open(xml, "w") as f:
    f.write("<domain type='qemu'><name>ro</name><memory>65536</memory><os><type>hvm</type></os></domain>")
r = env.virsh("define", xml, read_only=True)
t.ok(not r.ok and "read only access prevents virDomainDefineXML" in r.err,
     "the passed read-only socket is read-only", r)
proc.send_signal(signal.SIGTERM)
t.eq(proc.wait(30), 0, "socket-activated virtsnapd stops with status 0")
t.ok(os.path.exists(d.socket) and os.path.exists(d.socket_ro),
     "sockets passed by systemd are left to it (RemoveOnStop= is the unit's business)")

# Only the read-write socket passed, named by path (no LISTEN_FDNAMES): the other one is made.
os.unlink(d.socket_ro)
rw = listening(d.socket)
proc = activated([rw], [])
rw.close()
ok = wait_for(lambda: env.virsh("uri").ok or proc.poll() is not None)
t.ok(ok and proc.poll() is None and env.virsh("uri", read_only=True).ok and mode(d.socket_ro) == 0o600,
     "a socket not passed is created by the daemon itself, as libvirtd does", d.log_text()[-2000:])
proc.send_signal(signal.SIGTERM)
t.eq(proc.wait(30), 0, "stops with status 0")
t.ok(os.path.exists(d.socket) and not os.path.exists(d.socket_ro), "it removes only the socket it made")
os.unlink(d.socket)

# A descriptor that is not a listening socket is refused, with the reason.
pipe_r, pipe_w = os.pipe()


class FdHolder:
    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd


proc = activated([FdHolder(pipe_r)], ["virtsnapd.socket"])
rc = proc.wait(30)
os.close(pipe_r)
os.close(pipe_w)
t.ok(rc != 0 and "is not a listening UNIX stream socket" in d.log_text(), "a passed descriptor that is no socket is refused",
     d.log_text()[-1000:])

# ---- systemd units ----
units_dir = os.path.join(vstest.BUILD_ROOT, "tools", "systemd")
units = ["virtsnapd.service", "virtsnapd.socket", "virtsnapd-ro.socket"]
analyze = shutil.which("systemd-analyze")
if not analyze:
    t.skip("systemd-analyze verify", "systemd-analyze not installed")
elif not all(os.path.exists(os.path.join(units_dir, u)) for u in units):
    t.ok(False, "units generated in " + units_dir, os.listdir(units_dir) if os.path.isdir(units_dir) else "")
else:
    work = tempfile.mkdtemp(prefix="virtsnap-units-", dir=env.tmp)
    for u in units:
        with open(os.path.join(units_dir, u)) as f:
            text = f.read()
        # The installed path need not exist here: point ExecStart at the binary just built.
        text = "\n".join("ExecStart=" + d.binary if line.startswith("ExecStart=") else line
                         for line in text.splitlines()) + "\n"
        with open(os.path.join(work, u), "w") as f:
            f.write(text)
    r = subprocess.run([analyze, "verify", "--man=no"] + [os.path.join(work, u) for u in units],
                       capture_output=True, text=True, timeout=120)
    # verify only warns (exit 0) about unknown keys: any output is a defect too.
    t.ok(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
         "systemd-analyze verify accepts virtsnapd.service, .socket and -ro.socket", r.stdout + r.stderr)
    with open(os.path.join(units_dir, "virtsnapd.socket")) as f:
        sock_unit = f.read()
    with open(os.path.join(units_dir, "virtsnapd-ro.socket")) as f:
        ro_unit = f.read()
    t.ok("ListenStream=/run/virtsnap/virtsnapd-sock\n" in sock_unit and "SocketMode=0600" in sock_unit and
         "ListenStream=/run/virtsnap/virtsnapd-sock-ro\n" in ro_unit and "Service=virtsnapd.service" in ro_unit,
         "the sockets are the system layout's, owner-only")

t.finish()
