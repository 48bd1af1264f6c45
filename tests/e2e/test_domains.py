#!/usr/bin/python3
"""test_domains - virtsnapd manages the test guest through stock virsh and
python-libvirt: define, start, list, dominfo, domstate, dumpxml, suspend,
resume, shutdown, destroy, undefine; libvirt's error codes for an unknown
domain, bad XML and the read-only socket; 16 clients at once; a client that
disconnects mid-call; a daemon restart with the guest running (re-attach); a
QEMU killed with SIGKILL (crash detected, domain shut off)."""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

t = vstest.Tap()
env = vstest.Env(t)
import libvirt  # noqa: E402  (Debian's python3-libvirt)

# ---- define and inspect while shut off ----
env.define_guest("g1", disks=(("vda", 32), ("vdb", 32)), heartbeat_ms=20)
r = env.virsh("list", "--all", "--name")
t.ok("g1" in r.out.split(), "list --all shows the defined domain", r)
t.eq(env.domain_state("g1"), "shut off", "domstate of a defined domain")
r = env.virsh("dominfo", "g1")
t.ok(r.ok and "State:          shut off" in r.out and "Persistent:     yes" in r.out, "dominfo while shut off", r)
r = env.virsh("dumpxml", "g1")
t.ok(r.ok and "<name>g1</name>" in r.out and "<memory unit='KiB'>196608</memory>" in r.out,
     "dumpxml returns the definition in libvirt's layout", r)

# ---- start and run ----
r = env.virsh_ok("start boots the test guest", "start", "g1")
t.ok(env.wait_serial("g1", r"VSGUEST ready", timeout=180) is not None, "the guest reports ready on its serial console",
     env.serial_text("g1")[-2000:])
t.eq(env.domain_state("g1"), "running", "domstate running")
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "running (booted)", "domstate --reason after start")
r = env.virsh("list", "--name")
t.ok("g1" in r.out.split(), "list shows the running domain", r)
r = env.virsh("domid", "g1")
t.ok(r.ok and r.out.strip().isdigit(), "the running domain has an id", r)
r = env.virsh("dumpxml", "g1")
t.ok(r.ok and "id='" in r.out, "live XML carries the id", r)
r = env.virsh("dumpxml", "--inactive", "g1")
t.ok(r.ok and "id='" not in r.out, "inactive XML has no id", r)
r = env.virsh("start", "g1")
# virsh checks isActive itself first, exactly as against libvirtd.
t.ok(not r.ok and "Domain is already active" in r.err, "starting a running domain is refused", r)
try:
    conn0 = env.connect()
    conn0.lookupByName("g1").create()
    t.ok(False, "python: starting a running domain is refused")
except libvirt.libvirtError as e:
    t.eq((e.get_error_code(), str(e)), (libvirt.VIR_ERR_OPERATION_INVALID,
                                        "Requested operation is not valid: domain is already running"),
         "python: starting a running domain gives libvirt's error")

# ---- suspend / resume, seen by the guest heartbeat stopping ----
env.virsh_ok("suspend", "suspend", "g1")
t.eq(env.domain_state("g1"), "paused", "domstate paused")
n1 = len(env.heartbeats("g1"))
time.sleep(1.0)
n2 = len(env.heartbeats("g1"))
t.ok(n2 - n1 <= 1, "no heartbeats while paused", "%d -> %d" % (n1, n2))
env.virsh_ok("resume", "resume", "g1")
t.eq(env.domain_state("g1"), "running", "domstate running after resume")
time.sleep(1.0)
t.ok(len(env.heartbeats("g1")) > n2 + 5, "heartbeats continue after resume")

# ---- python-libvirt ----
conn = env.connect()
dom = conn.lookupByName("g1")
t.ok(dom.isActive() == 1, "python: isActive")
state, reason = dom.state()
t.eq((state, reason), (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_UNPAUSED), "python: state after resume")
info = dom.info()
t.eq((info[1], info[3]), (196608, 1), "python: info maxMem and vcpus")
names = sorted(d.name() for d in conn.listAllDomains())
t.ok("g1" in names, "python: listAllDomains")
t.eq(conn.getType(), "QEMU", "python: getType")
t.ok(conn.getLibVersion() >= 9000000, "python: getLibVersion")

# ---- block info ----
r = env.virsh("domblkinfo", "g1", "vda")
t.ok(r.ok and "Capacity:       33554432" in r.out, "domblkinfo reports the disk capacity", r)
info = dom.blockInfo("vdb")
t.ok(info[0] == 33554432 and info[2] > 0, "python: blockInfo capacity and physical size", info)
r = env.virsh("domblkinfo", "g1", "vdz")
t.ok(not r.ok and "invalid path vdz not assigned to domain" in r.err, "domblkinfo of an unknown disk", r)

# ---- errors ----
r = env.virsh("dominfo", "nosuch")
# virsh looks the name up as an id, a UUID and a name, then prints its own summary.
t.ok(not r.ok and "failed to get domain 'nosuch'" in r.err, "unknown domain error", r)
try:
    conn.lookupByName("nosuch")
    t.ok(False, "python: lookup of an unknown domain fails")
except libvirt.libvirtError as e:
    t.eq((e.get_error_code(), e.get_error_domain()), (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU),
         "python: unknown domain code and domain")
bad = os.path.join(env.tmp, "bad.xml")
with open(bad, "w") as f:
    f.write("<domain type='qemu'><name>bad</name>")
r = env.virsh("define", bad)
t.ok(not r.ok and "error" in r.err.lower(), "malformed XML is refused", r)
try:
    conn.defineXML("<domain type='qemu'><name>bad</name>")
    t.ok(False, "python: malformed XML refused")
except libvirt.libvirtError as e:
    t.eq(e.get_error_code(), libvirt.VIR_ERR_XML_DETAIL, "python: malformed XML code")
r = env.virsh("suspend", "g1", read_only=True)
t.ok(not r.ok and "operation forbidden" in r.err, "read-only socket refuses suspend", r)
r = env.virsh("dominfo", "g1", read_only=True)
t.ok(r.ok, "read-only socket serves dominfo", r)
ro = env.connect(read_only=True)
try:
    ro.lookupByName("g1").suspend()
    t.ok(False, "python: read-only suspend refused")
except libvirt.libvirtError as e:
    t.eq(e.get_error_code(), libvirt.VIR_ERR_OPERATION_DENIED, "python: read-only code")

# ---- 16 clients in parallel ----
results = []


def client(i):
    r = env.virsh("dominfo", "g1")
    results.append(r.ok and "running" in r.out)


threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
for th in threads:
    th.start()
for th in threads:
    th.join()
t.ok(len(results) == 16 and all(results), "16 virsh clients in parallel", results)

# ---- a client that disconnects in the middle of a call ----
def raw_call_and_vanish(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    def pkt(proc, serial, payload=b""):
        body = struct.pack(">IIiiII", 0x20008086, 1, proc, 0, serial, 0) + payload
        return struct.pack(">I", len(body) + 4) + body
    s.sendall(pkt(66, 0))
    name = b"qemu:///system"
    s.sendall(pkt(1, 1, struct.pack(">II", 1, len(name)) + name + b"\0" * ((4 - len(name) % 4) % 4) +
                  struct.pack(">I", 0)))
    # CONNECT_LIST_ALL_DOMAINS, then close without reading the reply.
    s.sendall(pkt(273, 2, struct.pack(">iI", 1, 3)))
    s.close()


for _ in range(5):
    raw_call_and_vanish(env.daemon.socket)
r = env.virsh("domstate", "g1")
t.ok(r.ok and r.out.strip() == "running", "clients vanishing mid-call harm nobody", r)

# ---- restart of the daemon with the guest running: re-attach ----
pid_before = env.qemu_pids()
env.daemon.stop()
t.ok(all(os.path.exists("/proc/%d" % p) for p in pid_before) and pid_before, "stopping virtsnapd leaves QEMU running",
     pid_before)
hb = len(env.heartbeats("g1"))
t.ok(env.daemon.start(), "virtsnapd restarts", env.daemon.log_text()[-2000:])
t.eq(env.domain_state("g1"), "running", "re-attached domain is running")
t.eq(env.qemu_pids(), pid_before, "same QEMU process after re-attach")
env.virsh_ok("suspend after re-attach (monitor works)", "suspend", "g1")
env.virsh_ok("resume after re-attach", "resume", "g1")
time.sleep(0.5)
t.ok(len(env.heartbeats("g1")) > hb, "guest kept running across the daemon restart")
env.daemon.kill9()
t.ok(all(os.path.exists("/proc/%d" % p) for p in pid_before), "SIGKILL of virtsnapd never kills a guest")
t.ok(env.daemon.start(), "virtsnapd restarts after SIGKILL", env.daemon.log_text()[-2000:])
t.eq(env.domain_state("g1"), "running", "re-attached after SIGKILL")

# ---- shutdown through ACPI ----
r = env.virsh_ok("shutdown", "shutdown", "g1")
t.ok(env.wait_state("g1", "shut off", timeout=120), "the guest powers off after ACPI shutdown",
     env.domain_state("g1"))

# ---- crash detection: QEMU killed with SIGKILL ----
env.virsh_ok("start again", "start", "g1")
env.wait_serial("g1", r"VSGUEST ready", timeout=180)
pids = env.qemu_pids()
for p in pids:
    os.kill(p, signal.SIGKILL)
t.ok(env.wait_state("g1", "shut off", timeout=30), "a killed QEMU is detected", env.domain_state("g1"))
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "shut off (crashed)", "crash reason")
run_dir = os.path.join(env.root, "run", "qemu")
left = [f for f in os.listdir(run_dir)] if os.path.isdir(run_dir) else []
t.eq([f for f in left if f.startswith("g1.")], [], "status file and sockets are cleaned after the crash")

# ---- destroy, undefine ----
env.virsh_ok("start for destroy", "start", "g1")
env.virsh_ok("destroy", "destroy", "g1")
t.eq(env.domain_state("g1"), "shut off", "destroyed domain is shut off")
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "shut off (destroyed)", "destroy reason")
env.virsh_ok("undefine", "undefine", "g1")
r = env.virsh("list", "--all", "--name")
t.ok("g1" not in r.out.split(), "undefined domain is gone", r)
t.ok(not os.path.exists(os.path.join(env.root, "etc", "qemu", "g1.xml")), "its config file is removed")

t.finish()
