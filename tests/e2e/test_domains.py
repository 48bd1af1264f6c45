#!/usr/bin/python3
"""test_domains - virtsnapd manages the test guest through stock virsh and
python-libvirt: define (and --validate), start (and --paused), list,
dominfo, domstate, dumpxml (and --security-info), suspend, resume, reboot,
autostart, shutdown, destroy (and --graceful), undefine; nodeinfo,
capabilities, isSecure, the guest's CPU time; libvirt's error codes for an
unknown domain, bad XML and the read-only socket; 16 clients at once; clients
that disconnect in the middle of a fast call and of a long one (a save); a
daemon restart with the guest running (re-attach); a QEMU killed with SIGKILL
(crash detected, domain shut off)."""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

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
t.eq(conn.isSecure(), 1, "python: isSecure (a UNIX socket)")
cpu1 = dom.info()[4]
time.sleep(1.0)
cpu2 = dom.info()[4]
t.ok(0 < cpu1 < cpu2, "python: info cpuTime is the QEMU process's, and grows while the guest runs", (cpu1, cpu2))
r = env.virsh("dominfo", "g1")
t.ok(r.ok and "CPU time:" in r.out and "CPU time:       0.0s" not in r.out, "dominfo shows the CPU time used", r)

# ---- host: nodeinfo, capabilities ----
r = env.virsh("nodeinfo")
with open("/proc/meminfo") as f:
    mem_kib = [int(line.split()[1]) for line in f if line.startswith("MemTotal:")][0]
t.ok(r.ok and "CPU model:           x86_64" in r.out and "CPU(s):              %d" % os.sysconf("SC_NPROCESSORS_ONLN")
     in r.out and "Memory size:         %d KiB" % mem_kib in r.out, "nodeinfo: model, CPUs and memory of the host", r)
r = env.virsh("capabilities")
caps = ET.fromstring(r.out) if r.ok else None
with open(os.path.join(env.root, "lib", "qemu", "host-uuid")) as f:
    host_uuid = f.read().strip()
t.ok(caps is not None and caps.findtext("host/cpu/arch") == "x86_64" and caps.findtext("host/uuid") == host_uuid and
     caps.find("guest/arch[@name='x86_64']/domain[@type='qemu']") is not None and
     caps.findtext("guest/os_type") == "hvm",
     "capabilities: x86_64 host with its stable UUID, hvm guests of type qemu", r)
# virsh prints the document and a newline of its own.
t.eq(conn.getCapabilities(), r.out[:-1], "python: getCapabilities is the same document")

# ---- dumpxml --security-info ----
r = env.virsh("dumpxml", "--security-info", "g1")
plain = env.virsh("dumpxml", "g1")
t.ok(r.ok and r.out == plain.out, "dumpxml --security-info on the read-write socket (no secrets in this guest)", r)
r = env.virsh("dumpxml", "--security-info", "g1", read_only=True)
t.ok(not r.ok and "operation forbidden: virDomainGetXMLDesc with secure flag" in r.err,
     "dumpxml --security-info is refused on the read-only socket", r)

# ---- autostart ----
env.virsh_ok("autostart", "autostart", "g1")
link = os.path.join(env.root, "etc", "qemu", "autostart", "g1.xml")
r = env.virsh("dominfo", "g1")
t.ok("Autostart:      enable" in r.out and os.path.exists(link) and dom.autostart() == 1,
     "autostart set: dominfo, python and the autostart link agree", r)
r = env.virsh("list", "--all", "--autostart", "--name")
t.ok("g1" in r.out.split(), "list --autostart shows it", r)
env.virsh_ok("autostart --disable", "autostart", "--disable", "g1")
r = env.virsh("dominfo", "g1")
t.ok("Autostart:      disable" in r.out and not os.path.exists(link) and dom.autostart() == 0,
     "autostart unset", r)
r = env.virsh("autostart", "g1", read_only=True)
t.ok(not r.ok and "read only access prevents virDomainSetAutostart" in r.err, "autostart refused read-only", r)

# ---- block info ----
r = env.virsh("domblkinfo", "g1", "vda")
t.ok(r.ok and "Capacity:       33554432" in r.out, "domblkinfo reports the disk capacity", r)
info = dom.blockInfo("vdb")
t.ok(info[0] == 33554432 and info[2] > 0, "python: blockInfo capacity and physical size", info)
r = env.virsh("domblkinfo", "g1", "vdz")
t.ok(not r.ok and "invalid path vdz not assigned to domain" in r.err, "domblkinfo of an unknown disk", r)

# ---- reboot (ACPI: the guest shuts down, QEMU resets it and it boots again) ----
readies = env.serial_text("g1").count("VSGUEST ready")
pid_before_reboot = env.qemu_pids()
env.virsh_ok("reboot", "reboot", "g1")
deadline = time.time() + 180
while time.time() < deadline and env.serial_text("g1").count("VSGUEST ready") <= readies:
    time.sleep(0.5)
t.ok(env.serial_text("g1").count("VSGUEST ready") > readies, "reboot: the guest boots again",
     env.serial_text("g1")[-1500:])
t.eq(env.domain_state("g1"), "running", "reboot: running afterwards")
t.eq(env.qemu_pids(), pid_before_reboot, "reboot: the same QEMU (a reset, not a restart)")

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
# --validate checks the document against libvirt's schema; without it an unknown element is kept.
odd = os.path.join(env.tmp, "odd.xml")
with open(odd, "w") as f:
    f.write(env.guest_xml("gval").replace("<features>", "<nosuchelement/>\n  <features>"))
r = env.virsh("define", "--validate", odd)
t.ok(not r.ok and "XML document failed to validate against schema" in r.err, "define --validate refuses it", r)
r = env.virsh("list", "--all", "--name")
t.ok("gval" not in r.out.split(), "nothing defined by the refused define", r)
good = os.path.join(env.tmp, "gval.xml")
with open(good, "w") as f:
    f.write(env.guest_xml("gval"))
env.virsh_ok("define --validate of a valid document", "define", "--validate", good)
env.virsh_ok("undefine gval", "undefine", "gval")
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


# ---- a client that vanishes in the middle of a long call: DOMAIN_SAVE of the guest ----
def xstr(b):
    return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)


save_dir = os.path.join(env.tmp, "midcall")
os.makedirs(save_dir)
save_file = os.path.join(save_dir, "g1.save")
g1 = conn.lookupByName("g1")
s = socket.socket(socket.AF_UNIX)
s.connect(env.daemon.socket)


def pkt(proc, serial, payload=b""):
    body = struct.pack(">IIiiII", 0x20008086, 1, proc, 0, serial, 0) + payload
    return struct.pack(">I", len(body) + 4) + body


s.sendall(pkt(66, 0) + pkt(1, 1, struct.pack(">I", 1) + xstr(b"qemu:///system") + struct.pack(">I", 0)))
s.sendall(pkt(55, 2, xstr(b"g1") + g1.UUID() + struct.pack(">i", g1.ID()) + xstr(save_file.encode())))
# Gone before any reply: the save is certainly still running (it takes far longer than this).
s.close()
r = env.virsh("list", "--all")
t.ok(r.ok and "g1" in r.out, "other clients are served while the orphaned save runs", r)
t.ok(env.wait_state("g1", "shut off", timeout=180), "the orphaned save still completes", env.domain_state("g1"))
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "shut off (saved)", "the guest was saved, not destroyed")
with open(save_file, "rb") as f:
    magic = f.read(16)
t.eq((magic.rstrip(b"\0"), sorted(os.listdir(save_dir))), (b"LibvirtQemudSave", ["g1.save"]),
     "a complete libvirt save image and nothing else is left")
t.eq(conn.lookupByName("g1").jobStats().get("type"), libvirt.VIR_DOMAIN_JOB_NONE, "no job is left on the domain")
env.virsh_ok("restore the orphaned save", "restore", save_file)
t.eq(env.domain_state("g1"), "running", "the guest runs again from the image")
hb_restored = len(env.heartbeats("g1"))
time.sleep(1.0)
t.ok(len(env.heartbeats("g1")) > hb_restored, "and its heartbeats continue")

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

# ---- start --paused, destroy --graceful ----
env.virsh_ok("start --paused", "start", "--paused", "g1")
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "paused (user)", "start --paused: paused by the user")
t.ok(env.wait_serial("g1", r"VSGUEST ready", timeout=3) is None, "the paused guest does not boot")
env.virsh_ok("resume the paused start", "resume", "g1")
t.ok(env.wait_serial("g1", r"VSGUEST ready", timeout=180) is not None, "it boots once resumed")
env.virsh_ok("destroy --graceful", "destroy", "--graceful", "g1")
r = env.virsh("domstate", "--reason", "g1")
t.eq(r.out.strip(), "shut off (destroyed)", "destroy --graceful: shut off (destroyed)")
t.eq(env.qemu_pids(), [], "no QEMU left after destroy --graceful")

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
