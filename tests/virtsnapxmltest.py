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

# --internal and --redefine success paths, on our own documents.
UUID = "c7a5fdbd-edaf-9455-926a-d65c16db1809"
snap_internal = """<domainsnapshot>
  <name>s1</name>
  <state>shutoff</state>
  <creationTime>1700000000</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
  </disks>
  <domain>
    <uuid>%s</uuid>
  </domain>
  <active>1</active>
</domainsnapshot>
""" % UUID
r = run("snapshot", "--internal", "-", stdin=snap_internal)
ok(r.returncode == 0 and r.stdout == snap_internal, "snapshot --internal: the metadata form round-trips", r)
r = run("snapshot", "--internal", "--validate", "-", stdin=snap_internal)
ok(r.returncode == 0 and r.stdout == snap_internal, "snapshot --internal --validate: the schema covers it", r)
r = run("snapshot", "--internal", "-", stdin=snap_internal.replace("  <active>1</active>\n", ""))
ok(r.returncode == 1 and "Could not find 'active' element" in r.stderr, "snapshot --internal requires <active>", r)

snap_redefine = snap_internal.replace("  <active>1</active>\n", "")
r = run("snapshot", "--redefine", "-", stdin=snap_redefine)
ok(r.returncode == 0 and r.stdout == snap_redefine,
   "snapshot --redefine: a legacy <domain><uuid> is kept without --domain", r)
r = run("snapshot", "--redefine", "--domain", dom, "-",
        stdin=snap_redefine.replace(UUID, "11111111-2222-3333-4444-555555555555"))
ok(r.returncode == 0 and ("<uuid>%s</uuid>" % UUID) in r.stdout,
   "snapshot --redefine --domain: the domain's uuid wins, as virtsnapd answers for its domain", r)

cp_redefine = """<domaincheckpoint>
  <name>c1</name>
  <creationTime>1700000000</creationTime>
  <disks>
    <disk name='vda' checkpoint='bitmap' bitmap='c1'/>
  </disks>
  <domain type='qemu'>
    <name>d</name>
    <uuid>%s</uuid>
    <memory unit='KiB'>65536</memory>
    <currentMemory unit='KiB'>65536</currentMemory>
    <vcpu placement='static'>1</vcpu>
    <os>
      <type arch='x86_64' machine='pc'>hvm</type>
      <boot dev='hd'/>
    </os>
    <clock offset='utc'/>
    <on_poweroff>destroy</on_poweroff>
    <on_reboot>restart</on_reboot>
    <on_crash>destroy</on_crash>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='%s'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
</domaincheckpoint>
""" % (UUID, img)
r = run("checkpoint", "--redefine", "-", stdin=cp_redefine)
ok(r.returncode == 0 and r.stdout == cp_redefine, "checkpoint --redefine round-trips with its <domain>", r)
r = run("checkpoint", "--redefine", "--domain", dom, "-", stdin=cp_redefine)
ok(r.returncode == 0 and r.stdout == cp_redefine, "checkpoint --redefine --domain: same uuid, aligned", r)
r = run("checkpoint", "--redefine", "--domain", dom, "-",
        stdin=cp_redefine.replace(UUID, "11111111-2222-3333-4444-555555555555"))
ok(r.returncode == 1 and ("must use uuid %s" % UUID) in r.stderr and "code 8, domain 69" in r.stderr,
   "checkpoint --redefine --domain: another domain's uuid is refused", r)
r = run("checkpoint", "--redefine", "-", stdin=cp_redefine.replace("  <creationTime>1700000000</creationTime>\n", ""))
ok(r.returncode == 1 and "missing creationTime from existing checkpoint" in r.stderr,
   "checkpoint --redefine requires a creation time", r)

r = run("checkpoint", "--internal", "-", stdin=cp_redefine)
warning = ("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
           "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
           "  virsh checkpoint-edit\nor other application using the libvirt API.\n-->\n\n")
ok(r.returncode == 0 and r.stdout == warning + cp_redefine,
   "checkpoint --internal prints the metadata file as virtsnapd writes it", r)
metadata_file = r.stdout
r = run("checkpoint", "--internal", "-", stdin=metadata_file)
ok(r.returncode == 0 and r.stdout == metadata_file, "checkpoint --internal reads its own file back unchanged", r)
r = run("checkpoint", "-", stdin=metadata_file)
ok(r.returncode == 0 and r.stdout.startswith("<domaincheckpoint>\n  <name>c1</name>\n"),
   "checkpoint without --internal prints no file comment", r)

r = run("checkpoint", "--validate", "-", stdin="<domaincheckpoint><bogus/></domaincheckpoint>")
ok(r.returncode == 1 and "code 92" in r.stderr, "checkpoint: validated against the schema (always)", r)
r = run("checkpoint", "-", stdin="<domaincheckpoint><bogus/></domaincheckpoint>")
ok(r.returncode == 1 and "code 92" in r.stderr, "checkpoint: validated without --validate too, as libvirt", r)
r = run("backup", "-", stdin="<domainbackup><bogus/></domainbackup>")
ok(r.returncode == 1 and "code 92" in r.stderr, "backup: validated without --validate, as libvirt", r)
r = run("backup", "--internal", "--validate", "-", stdin="<domainbackup mode='pull'/>")
ok(r.returncode == 1 and "internal backup status" in r.stderr, "backup --internal --validate is refused", r)

# libvirt's own files, read in place (skipped without ../shared).
shared = os.environ.get("VIRTSNAP_SHARED_DIR") or os.path.join(
    os.environ.get("VIRTSNAP_SOURCE_ROOT", "."), "..", "shared")
fixtures = os.path.join(shared, "fixtures", "libvirt")
if not os.path.isdir(fixtures):
    print("ok %d - libvirt fixtures # SKIP ../shared is absent" % (n + 1))
    n += 1
else:
    def fixture(rel):
        with open(os.path.join(fixtures, rel)) as f:
            return f.read()
    for case in ("noparent", "metadata"):
        path = os.path.join(fixtures, "qemudomainsnapshotxml2xmlout", case + ".xml")
        r = run("snapshot", "--redefine", path)
        ok(r.returncode == 0 and r.stdout == fixture("qemudomainsnapshotxml2xmlout/%s.xml" % case),
           "libvirt %s.xml: snapshot --redefine prints it byte for byte" % case, r)
    for case in ("all_parameters", "noparent_nodescription"):
        path = os.path.join(fixtures, "qemudomainsnapshotxml2xmlout", case + ".xml")
        r = run("snapshot", "--internal", path)
        ok(r.returncode == 0 and r.stdout == fixture("qemudomainsnapshotxml2xmlout/%s.xml" % case),
           "libvirt %s.xml: snapshot --internal prints it byte for byte" % case, r)
    path = os.path.join(fixtures, "qemudomaincheckpointxml2xmlout", "redefine.xml")
    r = run("checkpoint", "--redefine", path)
    ok(r.returncode == 0 and r.stdout == fixture("qemudomaincheckpointxml2xmlout/redefine.xml"),
       "libvirt checkpoint redefine.xml: --redefine prints it byte for byte", r)
    r = run("checkpoint", "--internal", path)
    ok(r.returncode == 0 and r.stdout == warning + fixture("qemudomaincheckpointxml2xmlout/redefine.xml"),
       "libvirt checkpoint redefine.xml: --internal prints the metadata file virtsnapd would write", r)

r = run("domain", "/nonexistent.xml")
ok(r.returncode == 1 and "error:" in r.stderr, "missing file", r)
r = run("bogus", dom)
ok(r.returncode == 1 and "unknown document kind" in r.stderr, "unknown kind", r)
r = run()
ok(r.returncode == 2 and "usage" in r.stderr, "usage", r)

print("1..%d" % n)
sys.exit(1 if failed else 0)
