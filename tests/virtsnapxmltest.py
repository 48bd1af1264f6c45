#!/usr/bin/python3
"""virtsnapxmltest - tools/virtsnap-xml prints canonical XML, or libvirt's error
with a non-zero exit status, for each document kind and option."""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("VIRTSNAP_BUILD_ROOT", "build")
TOOL = os.path.join(BUILD, "tools", "virtsnap-xml")
n = failed = 0


def ok(cond, name, diag=""):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, name))
    if not cond:
        failed += 1
        for line in str(diag).splitlines():
            print("#   " + line)


def run(*args, stdin=None):
    return subprocess.run([TOOL] + list(args), input=stdin, capture_output=True, text=True)


tmp = tempfile.mkdtemp()
dom = os.path.join(tmp, "dom.xml")
img = os.path.join(tmp, "a.qcow2")
open(img, "w").close()
with open(dom, "w") as f:
    f.write("""<domain type="qemu"><name>d</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
<memory unit="MiB">64</memory><os><type arch="x86_64" machine="pc">hvm</type></os>
<devices><disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="%s"/>
<target dev="vda" bus="virtio"/></disk><unknown-thing a="1"/></devices></domain>""" % img)

r = run("domain", dom)
ok(r.returncode == 0 and "<memory unit='KiB'>65536</memory>" in r.stdout, "domain: canonical layout", r)
ok("<unknown-thing a='1'/>" in r.stdout, "domain: unknown element kept in place", r.stdout)
ok(r.stdout.startswith("<domain type='qemu'>\n  <name>d</name>\n"), "domain: libvirt order and quoting", r.stdout)

r = run("snapshot", "-", stdin="<domainsnapshot><name>s1</name><description>x &amp; y</description></domainsnapshot>")
ok(r.returncode == 0 and "<name>s1</name>" in r.stdout and "x &amp; y" in r.stdout, "snapshot from stdin", r)

r = run("snapshot", "--domain", dom, "-", stdin="<domainsnapshot><name>s1</name></domainsnapshot>")
ok(r.returncode == 0 and "<disk name='vda' snapshot='internal'/>" in r.stdout,
   "snapshot aligned against a domain", r)

r = run("snapshot", "-", stdin="<domainsnapshot><name>a/b</name><memory snapshot='manual'/></domainsnapshot>")
ok(r.returncode == 1 and "error: XML error: 'manual' memory snapshot mode not supported" in r.stderr
   and "code 27, domain 35" in r.stderr, "snapshot error: libvirt's message, code and domain", r)

r = run("snapshot", "--redefine", "-", stdin="<domainsnapshot><name>s</name><creationTime>1</creationTime></domainsnapshot>")
ok(r.returncode == 1 and "missing state from existing snapshot" in r.stderr, "redefine requires a state", r)

r = run("snapshot", "--validate", "-", stdin="<domainsnapshot><bogus/></domainsnapshot>")
ok(r.returncode == 1 and "code 92" in r.stderr, "--validate refuses what the schema refuses", r)

r = run("checkpoint", "--domain", dom, "-", stdin="<domaincheckpoint><name>c1</name></domaincheckpoint>")
ok(r.returncode == 0 and "<disk name='vda' checkpoint='bitmap' bitmap='c1'/>" in r.stdout,
   "checkpoint aligned against a domain", r)

r = run("backup", "--domain", dom, "-", stdin="<domainbackup mode='pull'><server name='localhost' port='10809'/></domainbackup>")
ok(r.returncode == 0 and "<domainbackup mode='pull'>" in r.stdout, "backup pull", r)

r = run("domain", "/nonexistent.xml")
ok(r.returncode == 1 and "error:" in r.stderr, "missing file", r)
r = run("bogus", dom)
ok(r.returncode == 1 and "unknown document kind" in r.stderr, "unknown kind", r)
r = run()
ok(r.returncode == 2 and "usage" in r.stderr, "usage", r)

print("1..%d" % n)
sys.exit(1 if failed else 0)
