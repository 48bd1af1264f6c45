#!/usr/bin/python3
"""test_snapshot_queries - stock virsh prints against virtsnapd exactly what it
printed against libvirtd 9.0 (goldens in tests/snapshotquerydata, recorded by
tools/record-libvirt-goldens.py; see docs/compat.md "Snapshot queries and
snapshot XML against libvirtd 9.0").

Queries: the fixed branched tree of tree/ is built by REDEFINE on the domain of
domain.xml, then every line of cases.txt (snapshot-list with each option and
combination, snapshot-info, snapshot-current, snapshot-parent,
snapshot-dumpxml, errors for unknown names, snapshot-edit with a sed editor)
runs in order; stdout, stderr and exit status must equal <case>.out/.err/.rc
byte for byte. The tree is then built again, virtsnapd restarted (the metadata
read back from disk) and the cases before the first snapshot-edit run once more.

Modes: with the test guest, modes/steps.txt creates a snapshot of every mode
libvirt 9.0 has (internal shut off/running, external disk-only running/shut
off, external with memory non-live and LIVE) and dumps each; the outputs,
normalised as the generator normalised libvirt's, must equal modes/<case>.*,
whole and once more with the embedded domain definitions cut out.

Cases where virtsnapd still differs (KNOWN below, docs/compat.md) are TAP TODO
tests: still compared, shown with their diff, not counted as failures.
"""
import difflib
import importlib.util
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vstest  # noqa: E402

DATA = os.path.join(vstest.SOURCE_ROOT, "tests", "snapshotquerydata")
_spec = importlib.util.spec_from_file_location(
    "record_libvirt_goldens", os.path.join(vstest.SOURCE_ROOT, "tools", "record-libvirt-goldens.py"))
goldens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goldens)

t = vstest.Tap()
env = vstest.Env(t, need_guest=False)


def read(path):
    with open(path) as f:
        return f.read()


def virsh(args, extra_env=None):
    """virsh as the generator ran it against libvirtd: no -q, TZ=UTC, LC_ALL=C."""
    e = dict(os.environ)
    e.update({"TZ": "UTC", "LC_ALL": "C", "LANG": "C"})
    e.pop("VIRSH_DEFAULT_CONNECT_URI", None)
    e.update(extra_env or {})
    return subprocess.run(["virsh", "-c", env.uri()] + list(args), capture_output=True, text=True, env=e,
                          timeout=600)


# Where virtsnapd still prints something else than libvirtd: case -> the
# reason, one of the differences docs/compat.md lists. Such a case is still
# compared byte for byte and reported as a TAP TODO ("not ok ... # TODO"); once
# it matches, TAP says "ok ... # TODO" and meson fails the test until the entry
# is removed here and in docs/compat.md.
DEFAULTS = "libvirt's define-time defaults in <domain> (docs/compat.md, difference 1)"
RUNNING = "<resource> in the definition of a running domain (docs/compat.md, difference 2)"
COOKIE = "<cookie> of a running snapshot (docs/compat.md, difference 3)"
KNOWN = {
    "postparse-dumpxml": DEFAULTS,
    "postparse-snapshot-dumpxml": DEFAULTS,
}
MODES_KNOWN = {
    "dumpxml-internal-shutoff": DEFAULTS,
    "dumpxml-internal-running": "; ".join((DEFAULTS, RUNNING, COOKIE)),
    "dumpxml-external-disk-running": "; ".join((DEFAULTS, RUNNING)),
    "dumpxml-external-memory": "; ".join((DEFAULTS, RUNNING, COOKIE)),
    "dumpxml-external-memory-live": "; ".join((DEFAULTS, RUNNING, COOKIE)),
    "dumpxml-external-disk-shutoff": DEFAULTS,
}
# The same outputs with the embedded definitions cut out (see without_domains()).
MODES_VIEW_KNOWN = {
    "dumpxml-internal-running": COOKIE,
    "dumpxml-external-memory": COOKIE,
    "dumpxml-external-memory-live": COOKIE,
}


def todo_ok(cond, name, reason):
    """A TAP TODO test: reported, never counted as a failure by this script."""
    t.count += 1
    print("%s %d - %s # TODO %s" % ("ok" if cond else "not ok", t.count, name, reason))
    sys.stdout.flush()


def setup_ok(what, cp):
    if cp.returncode != 0:
        t.ok(False, what, "rc=%d\n%s%s" % (cp.returncode, cp.stdout, cp.stderr))
        return False
    return True


def diff_text(case, ext, want, got):
    d = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                     "libvirtd/%s.%s" % (case, ext), "virtsnapd/%s.%s" % (case, ext)))
    if got and not got.endswith("\n"):
        d += "\n\\ virtsnapd's output has no newline at end"
    return d


def compare(label, golden_dir, case, cp, fix=lambda s: s, known=None, view=None, view_name="", view_known=None):
    """stdout, stderr and exit status against <case>.out/.err/.rc. `fix` is the
    normalisation both sides went through; `view` (applied to both) selects a
    part to compare in a second, separately named test."""
    want = {ext: read(os.path.join(golden_dir, "%s.%s" % (case, ext))) for ext in ("out", "err", "rc")}
    got = {"out": fix(cp.stdout), "err": fix(cp.stderr), "rc": "%d\n" % cp.returncode}
    views = [("%s: %s" % (label, case), want, got, (known or {}).get(case))]
    if view:
        views.append(("%s: %s (%s)" % (label, case, view_name), {k: view(v) for k, v in want.items()},
                      {k: view(v) for k, v in got.items()}, (view_known or {}).get(case)))
    for name, w, g, reason in views:
        same = w == g
        if reason:
            todo_ok(same, name, reason)
        else:
            t.ok(same, name)
        if not same:
            t.note("".join(diff_text(case, ext, w[ext], g[ext]) for ext in ("rc", "out", "err") if w[ext] != g[ext]))


# ================= queries on the fixed tree =================
CASES = goldens.parse_cases(read(os.path.join(DATA, "cases.txt")))


def build_tree():
    for what, args in goldens.query_setup_steps(DATA):
        if not setup_ok(what, virsh(args)):
            return False
    return True


def undefine_query_domains():
    for d in (goldens.DOM, goldens.MIN_DOM):
        virsh(["undefine", d, "--snapshots-metadata"])


def changes_state(case_env, args):
    return "EDITOR" in case_env or args[:1] == ["snapshot-edit"]


if build_tree():
    t.ok(True, "query domains defined, their snapshots redefined")
    for case, case_env, args in CASES:
        compare("libvirtd golden", DATA, case, virsh(args, case_env), known=KNOWN)

    # The same tree read back from the metadata files by a restarted daemon.
    undefine_query_domains()
    if build_tree():
        env.daemon.stop()
        t.ok(env.daemon.start(), "virtsnapd restarts on the tree's metadata", env.daemon.log_text()[-2000:])
        first_edit = next(i for i, (_, e, a) in enumerate(CASES) if changes_state(e, a))
        for case, case_env, args in CASES[:first_edit]:
            compare("after restart", DATA, case, virsh(args, case_env), known=KNOWN)
    undefine_query_domains()


# ================= snapshot XML of every creation mode =================
DOMAIN_BODY = re.compile(r"^(  <(domain|inactiveDomain)\b[^>]*>\n).*?^  </\2>\n", re.M | re.S)


def without_domains(text):
    """The snapshot XML with the bodies of <domain> and <inactiveDomain> cut
    out: what the snapshot code itself decides (state, parent, memory, disks,
    cookie), apart from the domain definition's own formatting."""
    return DOMAIN_BODY.sub(lambda m: m.group(1) + "    ...\n  </%s>\n" % m.group(2), text)


guest, why = vstest.build_guest()
if not guest:
    t.skip("snapshot XML of every creation mode", why)
else:
    kernel, initrd = guest
    mdir = os.path.join(DATA, "modes")
    images = env.images
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", os.path.join(images, "vsmodes-vda.qcow2"), "64M"],
                   check=True)
    xml = read(os.path.join(mdir, "domain.xml.in")).replace("@IMAGES@", images).replace(
        "@KERNEL@", kernel).replace("@INITRD@", initrd)
    with open(os.path.join(images, "vsmodes.xml"), "w") as f:
        f.write(xml)
    serial = os.path.join(images, "vsmodes.serial")
    if setup_ok("define vsmodes", virsh(["define", os.path.join(images, "vsmodes.xml")])):
        for case, case_env, args in goldens.parse_cases(read(os.path.join(mdir, "steps.txt"))):
            args = [a.replace("@IMAGES@", images) for a in args]
            if args == ["@start"]:
                if setup_ok("start vsmodes", virsh(["start", goldens.MODES_DOM])):
                    t.ok(goldens.wait_file(serial, r"VSGUEST ready"), "vsmodes boots",
                         read(serial)[-1500:] if os.path.exists(serial) else "no serial log")
                continue
            if args == ["@destroy"]:
                setup_ok("destroy vsmodes", virsh(["destroy", goldens.MODES_DOM]))
                continue
            dump = args[:1] == ["snapshot-dumpxml"]
            compare("libvirtd mode golden", mdir, case, virsh(args, case_env),
                    lambda s: goldens.normalise(s, images, kernel, initrd), known=MODES_KNOWN,
                    view=without_domains if dump else None, view_name="embedded domains cut out",
                    view_known=MODES_VIEW_KNOWN)
        virsh(["destroy", goldens.MODES_DOM])
        virsh(["undefine", goldens.MODES_DOM, "--snapshots-metadata"])

t.note("virsh: " + shlex.join(["virsh", "-c", env.uri()]))
t.finish()
