#!/usr/bin/python3
"""record-libvirt-goldens.py - records what stock virsh prints against a real
libvirtd 9.0 for every snapshot query, and the snapshot XML libvirt returns for
each creation mode, as the goldens tests/e2e/test_snapshot_queries.py compares
virtsnapd with.

Run by hand, as root, on a machine where libvirtd answers qemu:///system
(bench/setup.sh --no-build installs Debian's libvirt-daemon-system and starts
it):

    tools/record-libvirt-goldens.py [--queries] [--modes] [--data DIR]

Without --queries/--modes it records both. It writes into DIR (default
tests/snapshotquerydata):

  Queries (issue 6). The shut-off TCG domain `vsquery` (fixed uuid, two qcow2
  disks at fixed paths under /var/tmp/virtsnap-snapshotquery) gets a fixed
  branched tree of ten snapshots by REDEFINE (two roots, branch points, states
  shutoff/running/paused/disk-snapshot, internal and external disks and memory,
  one current). Its definition is libvirt's canonical form (what libvirtd's
  `dumpxml --inactive --security-info` returns for minimal_domain_xml()), so
  the snapshot queries are compared apart from libvirt's define-time
  defaults; the second domain `vsminimal` keeps the hand-written form and has
  one snapshot, to show those defaults. Then every line of cases.txt is run
  with `virsh -c qemu:///system ARGS` and its stdout, stderr and exit status
  are stored as <case>.out, <case>.err and <case>.rc.
    domain.xml      vsquery's definition, as given to `virsh define`
    tree/NN-*.xml   the snapshots, as given to `virsh snapshot-create
                    --redefine` in file-name order (`--current` for the one
                    listed in tree/current)
    minimal/        vsminimal's domain.xml and snapshot.xml
    cases.txt       `<case> [VAR=value...] <virsh args>` (shlex), run in order
                    after query_setup_steps()

  Modes (issue 5). The test guest (tests/guest/build-guest.sh) is defined as
  `vsmodes` with its disk under a temporary image directory, and
  modes/steps.txt is run: a snapshot of every mode libvirt 9.0 creates
  (internal shut off and running, external disk-only running and shut off,
  external with memory non-live and LIVE) through snapshot-create-as, then
  snapshot-dumpxml of each. Outputs go to modes/<case>.out/.err/.rc after
  normalise() (tests/e2e/test_snapshot_queries.py applies the same function):
  the image directory becomes @IMAGES@, the guest's kernel and initrd @KERNEL@
  and @INITRD@, creation times (<creationTime> and snapshot-list's column)
  @CREATIONTIME@.

Every virsh runs with TZ=UTC and LC_ALL=C: snapshot-list and snapshot-info
print creation times in local time. Everything created on libvirtd (domains,
snapshot metadata, images, the domains' QEMU logs) is removed at the end, also
after a failure; the script refuses to run while its domains exist there.
vsquery's images exist only for libvirtd (no query opens them; the test needs
none). Input files (domain.xml, tree/, minimal/, cases.txt,
modes/domain.xml.in, modes/steps.txt) are written by this script from the
definitions below, so a change to the tree or the cases is made here and
re-recorded. The test imports this file for parse_cases(), normalise(),
query_setup_steps(), wait_file() and the domain names.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
URI = "qemu:///system"

# ---------------------------------------------------------------- the tree
DOM = "vsquery"
DOM_UUID = "6b3c1f0e-4d2a-4e8b-9c71-5a0f2e9d8c41"
IMGDIR = "/var/tmp/virtsnap-snapshotquery"
VDA = IMGDIR + "/vsquery-vda.qcow2"
VDB = IMGDIR + "/vsquery-vdb.qcow2"
T0 = 1700000000   # 2023-11-14 22:13:20 UTC


def minimal_domain_xml(name=DOM, uuid=DOM_UUID, vda=VDA, vdb=VDB):
    """The domain as a user writes it; libvirt's define adds its defaults."""
    return ("<domain type='qemu'>\n"
            "  <name>%s</name>\n"
            "  <uuid>%s</uuid>\n"
            "  <memory unit='MiB'>128</memory>\n"
            "  <vcpu>1</vcpu>\n"
            "  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n"
            "  </os>\n"
            "  <devices>\n"
            "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
            "    <disk type='file' device='disk'>\n"
            "      <driver name='qemu' type='qcow2'/>\n"
            "      <source file='%s'/>\n"
            "      <target dev='vda' bus='virtio'/>\n"
            "    </disk>\n"
            "    <disk type='file' device='disk'>\n"
            "      <driver name='qemu' type='qcow2'/>\n"
            "      <source file='%s'/>\n"
            "      <target dev='vdb' bus='virtio'/>\n"
            "    </disk>\n"
            "    <graphics type='vnc' autoport='yes' passwd='s3cret'/>\n"
            "  </devices>\n"
            "</domain>\n") % (name, uuid, vda, vdb)


def tree_domain_xml(canonical, vda, vdb):
    """The canonical domain (libvirt's dumpxml --inactive --security-info of
    minimal_domain_xml()) with the disk sources a snapshot had."""
    return canonical.replace("'%s'" % VDA, "'%s'" % vda).replace("'%s'" % VDB, "'%s'" % vdb)


def overlay(disk, snap):
    return "%s/vsquery-%s.%s" % (IMGDIR, disk, snap)


# (name, parent, description, state, seconds after T0, memory, disks, domain disk sources)
# memory: "no" | "internal" | "external:<file>"; disks: {target: "internal" | "no" | "external:<file>"}
TREE = [
    ("base", None, "Fresh install", "shutoff", 0,
     "no", {"vda": "internal", "vdb": "internal"}, (VDA, VDB)),
    ("configured", "base", "Services configured", "shutoff", 3600,
     "no", {"vda": "internal", "vdb": "internal"}, (VDA, VDB)),
    ("web-running", "configured", "Web server up", "running", 7200,
     "internal", {"vda": "internal", "vdb": "internal"}, (VDA, VDB)),
    ("Upgrade-test", "base", "Before upgrade: <test> & 'quotes' \"too\"", "shutoff", 9000,
     "no", {"vda": "external:" + overlay("vda", "Upgrade-test"), "vdb": "no"}, (VDA, VDB)),
    ("db-live", "configured", None, "running", 10800,
     "external:" + IMGDIR + "/vsquery.db-live.mem",
     {"vda": "external:" + overlay("vda", "db-live"), "vdb": "external:" + overlay("vdb", "db-live")}, (VDA, VDB)),
    ("web-disk-only", "web-running", "Disk-only of the web server", "disk-snapshot", 14400,
     "no", {"vda": "external:" + overlay("vda", "web-disk-only"), "vdb": "no"}, (VDA, VDB)),
    ("db-after-a", "db-live", "Branch A", "disk-snapshot", 18000,
     "no", {"vda": "external:" + overlay("vda", "db-after-a"), "vdb": "external:" + overlay("vdb", "db-after-a")},
     (overlay("vda", "db-live"), overlay("vdb", "db-live"))),
    ("db-after-b", "db-live", "Branch B", "disk-snapshot", 21600,
     "no", {"vda": "external:" + overlay("vda", "db-after-b"), "vdb": "external:" + overlay("vdb", "db-after-b")},
     (overlay("vda", "db-live"), overlay("vdb", "db-live"))),
    ("fresh", None, "Second root", "shutoff", 86400,
     "no", {"vda": "internal", "vdb": "internal"}, (VDA, VDB)),
    ("fresh-paused", "fresh", "Paused guest", "paused", 90000,
     "internal", {"vda": "internal", "vdb": "internal"}, (VDA, VDB)),
]
CURRENT = "db-live"

# The domain as written by hand (libvirt fills in its defaults) and one snapshot
# redefined with it: what virtsnapd makes of a non-canonical definition.
MIN_DOM = "vsminimal"
MIN_UUID = "0e8a4c2d-7b91-4f3e-a6d5-1c9b8e7f6a23"
MIN_VDA = IMGDIR + "/vsminimal-vda.qcow2"
MIN_VDB = IMGDIR + "/vsminimal-vdb.qcow2"
MIN_SNAPSHOT_XML = """<domainsnapshot>
  <name>plain</name>
  <state>shutoff</state>
  <creationTime>1700000000</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
    <disk name='vdb' snapshot='internal'/>
  </disks>
"""


def esc(s):
    for c, e in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("'", "&apos;"), ('"', "&quot;")):
        s = s.replace(c, e)
    return s


def snapshot_xml(canonical, name, parent, desc, state, dt, memory, disks, sources):
    x = ["<domainsnapshot>", "  <name>%s</name>" % name]
    if desc is not None:
        x.append("  <description>%s</description>" % esc(desc))
    x.append("  <state>%s</state>" % state)
    if parent:
        x += ["  <parent>", "    <name>%s</name>" % parent, "  </parent>"]
    x.append("  <creationTime>%d</creationTime>" % (T0 + dt))
    if memory.startswith("external:"):
        x.append("  <memory snapshot='external' file='%s'/>" % memory.split(":", 1)[1])
    else:
        x.append("  <memory snapshot='%s'/>" % memory)
    x.append("  <disks>")
    for target in ("vda", "vdb"):
        d = disks[target]
        if d.startswith("external:"):
            x += ["    <disk name='%s' snapshot='external' type='file'>" % target,
                  "      <driver type='qcow2'/>",
                  "      <source file='%s'/>" % d.split(":", 1)[1],
                  "    </disk>"]
        else:
            x.append("    <disk name='%s' snapshot='%s'/>" % (target, d))
    x.append("  </disks>")
    for line in tree_domain_xml(canonical, *sources).splitlines():
        x.append("  " + line)
    x.append("</domainsnapshot>")
    return "\n".join(x) + "\n"


EDITOR = "sed -i -e 's|<description>Branch A</description>|<description>Branch A, edited</description>|'"
EDITOR_CUR = "sed -i -e 's|<memory snapshot=|<description>Now described</description><memory snapshot=|'"

CASES = """
# snapshot-list, every listing option
list                         snapshot-list vsquery
list-tree                    snapshot-list vsquery --tree
list-parent                  snapshot-list vsquery --parent
list-roots                   snapshot-list vsquery --roots
list-leaves                  snapshot-list vsquery --leaves
list-no-leaves               snapshot-list vsquery --no-leaves
list-name                    snapshot-list vsquery --name
list-topological             snapshot-list vsquery --topological
list-topological-name        snapshot-list vsquery --topological --name
list-inactive                snapshot-list vsquery --inactive
list-active                  snapshot-list vsquery --active
list-disk-only               snapshot-list vsquery --disk-only
list-internal                snapshot-list vsquery --internal
list-external                snapshot-list vsquery --external
list-metadata                snapshot-list vsquery --metadata
list-no-metadata             snapshot-list vsquery --no-metadata
list-details                 snapshot-list vsquery --parent --name
list-active-inactive         snapshot-list vsquery --active --inactive
list-inactive-disk-only      snapshot-list vsquery --inactive --disk-only
list-leaves-no-leaves        snapshot-list vsquery --leaves --no-leaves
list-internal-external       snapshot-list vsquery --internal --external
list-leaves-external         snapshot-list vsquery --leaves --external
list-no-leaves-internal      snapshot-list vsquery --no-leaves --internal
list-active-leaves           snapshot-list vsquery --active --leaves
list-roots-leaves            snapshot-list vsquery --roots --leaves
list-roots-name              snapshot-list vsquery --roots --name
list-tree-leaves             snapshot-list vsquery --tree --leaves
list-tree-external           snapshot-list vsquery --tree --external
list-parent-topological      snapshot-list vsquery --parent --topological
list-tree-name               snapshot-list vsquery --tree --name
list-roots-topological       snapshot-list vsquery --roots --topological --name
# --from and --current
list-from                    snapshot-list vsquery --from configured
list-from-descendants        snapshot-list vsquery --from configured --descendants
list-from-leaf               snapshot-list vsquery --from web-disk-only
list-from-root-descendants   snapshot-list vsquery --from base --descendants
list-from-tree               snapshot-list vsquery --tree --from configured
list-from-tree-descendants   snapshot-list vsquery --tree --from base --descendants
list-from-name-descendants   snapshot-list vsquery --name --from configured --descendants
list-from-parent             snapshot-list vsquery --parent --from base --descendants
list-from-leaves             snapshot-list vsquery --from base --descendants --leaves
list-from-no-leaves          snapshot-list vsquery --from base --descendants --no-leaves
list-from-disk-only          snapshot-list vsquery --from configured --descendants --disk-only
list-from-external           snapshot-list vsquery --from base --external
list-from-internal-name      snapshot-list vsquery --from base --descendants --internal --name
list-from-topological        snapshot-list vsquery --from base --descendants --topological --name
list-from-second-root        snapshot-list vsquery --from fresh --descendants --tree
list-current                 snapshot-list vsquery --current
list-current-descendants     snapshot-list vsquery --current --descendants
list-current-tree            snapshot-list vsquery --current --tree
list-current-name            snapshot-list vsquery --current --name --descendants
# options virsh refuses (client side) and unknown snapshots
list-tree-parent             snapshot-list vsquery --tree --parent
list-tree-roots              snapshot-list vsquery --tree --roots
list-roots-from              snapshot-list vsquery --roots --from base
list-descendants-alone       snapshot-list vsquery --descendants
list-from-unknown            snapshot-list vsquery --from nosuch
list-unknown-domain          snapshot-list nosuchdomain
# snapshot-info
info-current-by-name         snapshot-info vsquery db-live
info-current                 snapshot-info vsquery --current
info-root                    snapshot-info vsquery base
info-leaf                    snapshot-info vsquery web-disk-only
info-paused                  snapshot-info vsquery fresh-paused
info-shutoff-external        snapshot-info vsquery Upgrade-test
info-snapshotname            snapshot-info vsquery --snapshotname configured
info-unknown                 snapshot-info vsquery nosuch
info-missing-name            snapshot-info vsquery
# snapshot-current
current                      snapshot-current vsquery
current-name                 snapshot-current vsquery --name
current-security-info        snapshot-current vsquery --security-info
# snapshot-parent
parent                       snapshot-parent vsquery db-after-a
parent-of-root               snapshot-parent vsquery base
parent-of-second-root        snapshot-parent vsquery fresh
parent-current               snapshot-parent vsquery --current
parent-unknown               snapshot-parent vsquery nosuch
# snapshot-dumpxml
dumpxml-root                 snapshot-dumpxml vsquery base
dumpxml-internal-running     snapshot-dumpxml vsquery web-running
dumpxml-external-memory      snapshot-dumpxml vsquery db-live
dumpxml-disk-only            snapshot-dumpxml vsquery db-after-b
dumpxml-escaped-description  snapshot-dumpxml vsquery Upgrade-test
dumpxml-paused               snapshot-dumpxml vsquery fresh-paused
dumpxml-security-info        snapshot-dumpxml vsquery web-running --security-info
dumpxml-unknown              snapshot-dumpxml vsquery nosuch
# snapshot-edit with a non-interactive editor, then what changed
edit-description             EDITOR=%s snapshot-edit vsquery db-after-a
edit-dumpxml                 snapshot-dumpxml vsquery db-after-a
edit-current-stays           snapshot-current vsquery --name
edit-current                 EDITOR=%s snapshot-edit vsquery --current
edit-current-dumpxml         snapshot-dumpxml vsquery db-live
edit-current-info            snapshot-info vsquery --current
edit-unchanged               EDITOR=true snapshot-edit vsquery base
edit-unknown                 EDITOR=true snapshot-edit vsquery nosuch
edit-list-after              snapshot-list vsquery --tree
edit-list-topological        snapshot-list vsquery --topological --name
# the domains themselves: canonical (libvirt's own dumpxml) and as written by hand
domain-dumpxml               dumpxml --inactive --security-info vsquery
postparse-dumpxml            dumpxml --inactive vsminimal
postparse-snapshot-dumpxml   snapshot-dumpxml vsminimal plain
postparse-snapshot-list      snapshot-list vsminimal --parent
""" % (shlex.quote(EDITOR), shlex.quote(EDITOR_CUR))

# ---------------------------------------------------------------- the modes
MODES_DOM = "vsmodes"
MODES_UUID = "2f7d9b3a-8c14-4e65-b0a2-9d3e6c1f4a57"
MODES_DOMAIN_XML_IN = """<domain type='qemu'>
  <name>vsmodes</name>
  <uuid>2f7d9b3a-8c14-4e65-b0a2-9d3e6c1f4a57</uuid>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>@KERNEL@</kernel>
    <initrd>@INITRD@</initrd>
    <cmdline>console=ttyS0 quiet vs.heartbeat=200</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='@IMAGES@/vsmodes-vda.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='@IMAGES@/vsmodes.serial'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"""
# <case> @start | @destroy | <virsh args>; @IMAGES@ is the image directory.
MODES_STEPS = """
create-internal-shutoff        snapshot-create-as vsmodes int-off --description 'internal, shut off'
-                              @start
create-internal-running        snapshot-create-as vsmodes int-running --description 'internal, running'
create-external-disk-running   snapshot-create-as vsmodes ext-disk-running --disk-only --atomic
create-external-memory         snapshot-create-as vsmodes ext-mem --memspec file=@IMAGES@/vsmodes.ext-mem.mem,snapshot=external
create-external-memory-live    snapshot-create-as vsmodes ext-mem-live --live --memspec file=@IMAGES@/vsmodes.ext-mem-live.mem
-                              @destroy
create-external-disk-shutoff   snapshot-create-as vsmodes ext-disk-off --disk-only
dumpxml-internal-shutoff       snapshot-dumpxml vsmodes int-off
dumpxml-internal-running       snapshot-dumpxml vsmodes int-running
dumpxml-external-disk-running  snapshot-dumpxml vsmodes ext-disk-running
dumpxml-external-memory        snapshot-dumpxml vsmodes ext-mem
dumpxml-external-memory-live   snapshot-dumpxml vsmodes ext-mem-live
dumpxml-external-disk-shutoff  snapshot-dumpxml vsmodes ext-disk-off
list-tree                      snapshot-list vsmodes --tree
list-details                   snapshot-list vsmodes --parent --internal
"""


def parse_cases(text):
    """[(case, env, args)] from the cases.txt / steps.txt format."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        case, rest = words[0], words[1:]
        env = {}
        while rest and re.match(r"^[A-Z_]+=", rest[0]):
            k, v = rest.pop(0).split("=", 1)
            env[k] = v
        out.append((case, env, rest))
    return out


def normalise(text, images, kernel, initrd):
    """What must differ between two runs of the mode steps, made equal."""
    text = text.replace(images, "@IMAGES@").replace(kernel, "@KERNEL@").replace(initrd, "@INITRD@")
    text = re.sub(r"<creationTime>\d+</creationTime>", "<creationTime>@CREATIONTIME@</creationTime>", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", "@CREATIONTIME@", text)


# ---------------------------------------------------------------- running virsh
def virsh(*args, env=None, check=False):
    e = dict(os.environ)
    e.update({"TZ": "UTC", "LC_ALL": "C", "LANG": "C"})
    e.pop("VIRSH_DEFAULT_CONNECT_URI", None)
    e.update(env or {})
    cp = subprocess.run(["virsh", "-c", URI] + list(args), capture_output=True, text=True, env=e)
    if check and cp.returncode != 0:
        raise SystemExit("virsh %s failed:\n%s%s" % (" ".join(args), cp.stdout, cp.stderr))
    return cp


def store(outdir, case, cp, fix=lambda s: s):
    for ext, data in (("out", cp.stdout), ("err", cp.stderr), ("rc", "%d\n" % cp.returncode)):
        with open(os.path.join(outdir, "%s.%s" % (case, ext)), "w") as f:
            f.write(fix(data))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def undefine(name):
    if virsh("domstate", name).returncode != 0:
        return
    virsh("destroy", name)
    virsh("undefine", name, "--snapshots-metadata", "--managed-save", "--nvram")
    # libvirtd keeps the QEMU log of an undefined domain
    log = "/var/log/libvirt/qemu/%s.log" % name
    if os.path.exists(log):
        os.unlink(log)


# ---------------------------------------------------------------- queries
def query_setup_steps(data):
    """[(what, virsh args)] that build the query domains from the files in DATA."""
    steps = [("define domain.xml", ["define", os.path.join(data, "domain.xml")])]
    current = open(os.path.join(data, "tree", "current")).read().strip()
    for f in sorted(os.listdir(os.path.join(data, "tree"))):
        if f.endswith(".xml"):
            extra = ["--current"] if f.split("-", 1)[1][:-len(".xml")] == current else []
            steps.append(("redefine tree/" + f,
                          ["snapshot-create", DOM, os.path.join(data, "tree", f), "--redefine"] + extra))
    steps.append(("define minimal/domain.xml", ["define", os.path.join(data, "minimal", "domain.xml")]))
    steps.append(("redefine minimal/snapshot.xml",
                  ["snapshot-create", MIN_DOM, os.path.join(data, "minimal", "snapshot.xml"), "--redefine"]))
    return steps


def write_query_inputs(data):
    """Writes domain.xml, tree/, minimal/ and cases.txt; the canonical domain
    comes from libvirtd itself (define, dumpxml, undefine)."""
    write(os.path.join(data, "minimal", "domain.xml"), minimal_domain_xml(MIN_DOM, MIN_UUID, MIN_VDA, MIN_VDB))
    write(os.path.join(data, "minimal", "snapshot.xml"), MIN_SNAPSHOT_XML + "".join(
        "  " + line + "\n" for line in minimal_domain_xml(MIN_DOM, MIN_UUID, MIN_VDA, MIN_VDB).splitlines())
        + "</domainsnapshot>\n")
    write(os.path.join(IMGDIR, "minimal.xml"), minimal_domain_xml())
    virsh("define", os.path.join(IMGDIR, "minimal.xml"), check=True)
    canonical = virsh("dumpxml", "--inactive", "--security-info", DOM, check=True).stdout
    virsh("undefine", DOM, check=True)
    os.unlink(os.path.join(IMGDIR, "minimal.xml"))
    write(os.path.join(data, "domain.xml"), canonical)
    shutil.rmtree(os.path.join(data, "tree"), ignore_errors=True)
    for i, snap in enumerate(TREE):
        write(os.path.join(data, "tree", "%02d-%s.xml" % (i + 1, snap[0])), snapshot_xml(canonical, *snap))
    write(os.path.join(data, "tree", "current"), CURRENT + "\n")
    write(os.path.join(data, "cases.txt"),
          "# Written by tools/record-libvirt-goldens.py: <case> [VAR=value...] <virsh args> (shlex).\n" +
          CASES.lstrip("\n"))


def record_queries(data):
    for d in (DOM, MIN_DOM):
        if virsh("domstate", d).returncode == 0:
            raise SystemExit("domain %s already exists on libvirtd: remove it first" % d)
    for f in os.listdir(data) if os.path.isdir(data) else []:
        if re.search(r"\.(out|err|rc)$", f):
            os.unlink(os.path.join(data, f))
    created_dir = not os.path.isdir(IMGDIR)
    os.makedirs(IMGDIR, exist_ok=True)
    images = (VDA, VDB, MIN_VDA, MIN_VDB)
    try:
        for p in images:
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", p, "16M"], check=True)
        write_query_inputs(data)
        for what, args in query_setup_steps(data):
            cp = virsh(*args)
            if cp.returncode != 0:
                raise SystemExit("%s failed:\n%s%s" % (what, cp.stdout, cp.stderr))
        for case, env, args in parse_cases(CASES):
            store(data, case, virsh(*args, env=env))
            print("recorded " + case)
    finally:
        undefine(DOM)
        undefine(MIN_DOM)
        for p in images:
            if os.path.exists(p):
                os.unlink(p)
        if created_dir:
            shutil.rmtree(IMGDIR, ignore_errors=True)


# ---------------------------------------------------------------- modes
def wait_file(path, pattern, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, errors="replace") as f:
                if re.search(pattern, f.read()):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def record_modes(data):
    sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "e2e"))
    import vstest
    guest, why = vstest.build_guest()
    if not guest:
        raise SystemExit(why)
    kernel, initrd = guest
    if virsh("domstate", MODES_DOM).returncode == 0:
        raise SystemExit("domain %s already exists on libvirtd: remove it first" % MODES_DOM)
    mdir = os.path.join(data, "modes")
    os.makedirs(mdir, exist_ok=True)
    for f in os.listdir(mdir):
        if re.search(r"\.(out|err|rc)$", f):
            os.unlink(os.path.join(mdir, f))
    write(os.path.join(mdir, "domain.xml.in"), MODES_DOMAIN_XML_IN)
    write(os.path.join(mdir, "steps.txt"),
          "# Written by tools/record-libvirt-goldens.py: <case> @start|@destroy|<virsh args> (shlex);\n"
          "# @IMAGES@ is the run's image directory, '-' records nothing.\n" + MODES_STEPS.lstrip("\n"))
    images = tempfile.mkdtemp(prefix="virtsnap-goldens-")
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", images + "/vsmodes-vda.qcow2", "64M"], check=True)
        xml = MODES_DOMAIN_XML_IN.replace("@IMAGES@", images).replace("@KERNEL@", kernel).replace("@INITRD@", initrd)
        write(images + "/vsmodes.xml", xml)
        virsh("define", images + "/vsmodes.xml", check=True)
        for case, env, args in parse_cases(MODES_STEPS):
            args = [a.replace("@IMAGES@", images) for a in args]
            if args == ["@start"]:
                virsh("start", MODES_DOM, check=True)
                if not wait_file(images + "/vsmodes.serial", r"VSGUEST ready"):
                    raise SystemExit("the guest did not boot")
                continue
            if args == ["@destroy"]:
                virsh("destroy", MODES_DOM, check=True)
                continue
            cp = virsh(*args, env=env)
            store(mdir, case, cp, lambda s: normalise(s, images, kernel, initrd))
            print("recorded modes/%s (rc %d)" % (case, cp.returncode))
    finally:
        undefine(MODES_DOM)
        shutil.rmtree(images, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", action="store_true")
    ap.add_argument("--modes", action="store_true")
    ap.add_argument("--data", default=os.path.join(SOURCE_ROOT, "tests", "snapshotquerydata"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if virsh("uri").returncode != 0:
        raise SystemExit("libvirtd does not answer %s (bench/setup.sh --no-build starts it)" % URI)
    ver = virsh("version", "--daemon").stdout
    if "Running against daemon: 9.0.0" not in ver:
        print("warning: the goldens are meant to come from libvirtd 9.0.0:\n" + ver, file=sys.stderr)
    both = not a.queries and not a.modes
    os.makedirs(a.data, exist_ok=True)
    if a.queries or both:
        record_queries(a.data)
    if a.modes or both:
        record_modes(a.data)


if __name__ == "__main__":
    main()
