#!/usr/bin/python3
"""bench_scale - snapshot metadata at scale, virtsnapd and libvirtd side by side (issue 6).

For N snapshots created by REDEFINE on one defined, shut-off domain (same domain XML on
both daemons; a tree of parent chains with branches; the last one redefined CURRENT):
  redefine of all N, daemon start-up with that metadata (restart -> socket answers ->
  first listAllSnapshots returns N), listAllSnapshots, snapshotLookupByName of every
  name, getXMLDesc of every snapshot, `virsh snapshot-list --tree`, a no-op call's round
  trip (getLibVersion, dom.isActive) and the per-call queries as a ratio to it, and the
  daemon's VmRSS per snapshot (fresh start with N minus fresh start with 0), and its
  VmRSS right after the redefines and after the XML pass. Every undefine (N files
  deleted) comes after both daemons' redefines (see main()).

    /usr/bin/python3 bench/bench_scale.py [--quick] [-n N] [--only virtsnapd|libvirtd]

--quick: N=1,000, one start-up sample. Default N=10,000, three start-up samples.
Restarting libvirtd does not stop its running guests (it re-attaches them).
Writes bench/results/scale.md (+ .json); not a test: run by hand, as root, after
bench/setup.sh.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from benchlib import libvirt  # noqa: E402

DOMAIN = "vsbench-scale"


def domain_xml(disk):
    return ("<domain type='qemu'>\n"
            "  <name>%s</name>\n"
            "  <uuid>%s</uuid>\n"
            "  <memory unit='MiB'>128</memory>\n"
            "  <vcpu>1</vcpu>\n"
            "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
            "  <devices>\n"
            "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
            "    <disk type='file' device='disk'>\n"
            "      <driver name='qemu' type='qcow2'/>\n"
            "      <source file='%s'/>\n"
            "      <target dev='vda' bus='virtio'/>\n"
            "    </disk>\n"
            "  </devices>\n"
            "</domain>\n") % (DOMAIN, uuidlib.uuid4(), disk)


def tree(n, seed=6):
    """[(name, parent or None)]: chains of 50 with branch points picked at random."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        if i == 0:
            parent = None
        elif i % 50:
            parent = i - 1
        else:
            parent = rnd.randrange(i)
        out.append(("s%05d" % i, None if parent is None else "s%05d" % parent))
    return out


def snapshot_xml(name, parent, ctime, dom_xml):
    p = "  <parent><name>%s</name></parent>\n" % parent if parent else ""
    return ("<domainsnapshot>\n"
            "  <name>%s</name>\n"
            "  <description>bench snapshot %s</description>\n"
            "  <state>shutoff</state>\n"
            "%s"
            "  <creationTime>%d</creationTime>\n"
            "  <memory snapshot='no'/>\n"
            "  <disks>\n"
            "    <disk name='vda' snapshot='internal'/>\n"
            "  </disks>\n"
            "%s"
            "</domainsnapshot>\n") % (name, name, p, ctime, dom_xml)


def per_call(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def best_of(k, fn):
    return min(fn() for _ in range(k))


def virsh_wall(uri, *args):
    t0 = time.perf_counter()
    r = subprocess.run(["virsh", "-q", "-c", uri] + list(args), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    return dt, r


def run_target(t, n, startup_samples, noop_reps, workdir):
    res = {"target": t.name, "n": n}
    if isinstance(t, bl.VirtsnapdTarget):
        if not t.start():
            res["error"] = "virtsnapd did not start: see " + t.log
            return res
    conn = t.connect()
    # leftovers of an interrupted run
    try:
        old = conn.lookupByName(DOMAIN)
        old.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    except libvirt.libvirtError:
        pass
    disk = os.path.join(workdir, "scale-vda.qcow2")
    if not os.path.exists(disk):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)
    dom = conn.defineXML(domain_xml(disk))
    finished = False
    try:
        dxml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        res["version"] = conn.getLibVersion()

        def probe(c):
            d = c.lookupByName(DOMAIN)
            got = len(d.listAllSnapshots(0))
            if got != res.get("expect", 0):
                raise libvirt.libvirtError("snapshots not loaded yet")

        # start-up and memory with 0 snapshots (baseline)
        res["expect"] = 0
        conn.close()
        s0 = [t.restart_timed(probe) for _ in range(startup_samples)]
        res["startup0_s"] = bl.median(s0)
        time.sleep(0.5)
        res["rss0_kib"] = bl.vm_rss_kib(t.pid()) if t.pid() else None
        conn = t.connect()
        dom = conn.lookupByName(DOMAIN)

        # redefine all
        shape = tree(n)
        base = 1700000000
        xmls = [snapshot_xml(name, parent, base + i, dxml) for i, (name, parent) in enumerate(shape)]
        bl.log("%s: redefining %d snapshots" % (t.name, n))
        t0 = time.perf_counter()
        for i, x in enumerate(xmls):
            flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
            if i == n - 1:
                flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
            dom.snapshotCreateXML(x, flags)
        res["redefine_s"] = time.perf_counter() - t0
        res["rss_after_redefine_kib"] = bl.vm_rss_kib(t.pid()) if t.pid() else None
        bl.log("%s: redefine %.2f s" % (t.name, res["redefine_s"]))

        # start-up with N snapshots
        res["expect"] = n
        conn.close()
        sn = [t.restart_timed(probe) for _ in range(startup_samples)]
        res["startup_s"] = bl.median(sn)
        res["startup_samples_s"] = sn
        time.sleep(0.5)
        res["rssN_kib"] = bl.vm_rss_kib(t.pid()) if t.pid() else None
        bl.log("%s: start-up with %d snapshots %s s" % (t.name, n, sn))
        conn = t.connect()
        dom = conn.lookupByName(DOMAIN)

        # no-op round trips
        res["noop_libversion_s"] = best_of(3, lambda: per_call(conn.getLibVersion, noop_reps))
        res["noop_isactive_s"] = best_of(3, lambda: per_call(dom.isActive, noop_reps))
        noop = res["noop_isactive_s"]

        # listAllSnapshots
        res["listall_s"] = best_of(5, lambda: per_call(lambda: dom.listAllSnapshots(0), 1))
        names = [s.getName() for s in dom.listAllSnapshots(0)]
        res["listed"] = len(names)

        # lookup of every name
        def lookup_all():
            t0 = time.perf_counter()
            for nm in names:
                dom.snapshotLookupByName(nm, 0)
            return time.perf_counter() - t0
        res["lookup_all_s"] = best_of(3, lookup_all)
        res["lookup_per_call_s"] = res["lookup_all_s"] / max(1, len(names))

        # XML of every snapshot
        snaps = [dom.snapshotLookupByName(nm, 0) for nm in names]

        def xml_all():
            t0 = time.perf_counter()
            total = 0
            for s in snaps:
                total += len(s.getXMLDesc(0))
            res["xml_bytes"] = total
            return time.perf_counter() - t0
        res["xml_all_s"] = best_of(3, xml_all)
        res["rss_after_xml_kib"] = bl.vm_rss_kib(t.pid()) if t.pid() else None
        res["xml_per_call_s"] = res["xml_all_s"] / max(1, len(snaps))

        # getParent of every snapshot (what --tree asks per snapshot when it has no listAll parent info)
        def parent_all():
            t0 = time.perf_counter()
            for s in snaps:
                try:
                    s.getParent(0)
                except libvirt.libvirtError:
                    pass
            return time.perf_counter() - t0
        res["parent_all_s"] = best_of(3, parent_all)
        res["parent_per_call_s"] = res["parent_all_s"] / max(1, len(snaps))

        res["ratio_lookup"] = res["lookup_per_call_s"] / noop
        res["ratio_xml"] = res["xml_per_call_s"] / noop
        res["ratio_parent"] = res["parent_per_call_s"] / noop

        # virsh
        res["virsh_floor_s"] = min(virsh_wall(t.uri, "uri")[0] for _ in range(3))
        tree_times = []
        for _ in range(3):
            dt, r = virsh_wall(t.uri, "snapshot-list", DOMAIN, "--tree")
            if r.returncode != 0:
                res["tree_error"] = r.stderr.strip()[-300:]
                break
            tree_times.append(dt)
            res["tree_lines"] = len(r.stdout.splitlines())
        res["tree_s"] = min(tree_times) if tree_times else None
        dt, r = virsh_wall(t.uri, "snapshot-list", DOMAIN, "--name")
        res["virsh_list_names_s"] = dt if r.returncode == 0 else None
        bl.log("%s: queries done" % t.name)
        finished = True
    finally:
        if not finished:
            undefine(t, res)
    return res


def undefine(t, res):
    """Undefines the domain with its N snapshots (timed): N files deleted."""
    try:
        conn = t.connect()
        t0 = time.perf_counter()
        conn.lookupByName(DOMAIN).undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        res["undefine_s"] = time.perf_counter() - t0
        conn.close()
    except libvirt.libvirtError as e:
        res["cleanup_error"] = e.get_error_message()


def report(results, skipped, args):
    def g(r, k, f=lambda v: v):
        v = r.get(k)
        return "—" if v is None else f(v)
    ms = lambda v: "%.1f" % (v * 1000)  # noqa: E731
    us = lambda v: "%.0f" % (v * 1e6)  # noqa: E731
    ratio = lambda v: "%.2f×" % v  # noqa: E731
    mib = lambda v: "%.1f" % (v / 1024)  # noqa: E731
    rows = [
        ("redefine all N (s)", "redefine_s", lambda v: "%.2f" % v),
        ("start-up, 0 snapshots (ms)", "startup0_s", ms),
        ("start-up, N snapshots (ms)", "startup_s", ms),
        ("no-op round trip getLibVersion (µs)", "noop_libversion_s", us),
        ("no-op round trip dom.isActive (µs)", "noop_isactive_s", us),
        ("listAllSnapshots (ms)", "listall_s", ms),
        ("lookup of every name (ms)", "lookup_all_s", ms),
        ("  per lookup (µs)", "lookup_per_call_s", us),
        ("  per lookup / no-op", "ratio_lookup", ratio),
        ("getXMLDesc of every snapshot (ms)", "xml_all_s", ms),
        ("  per getXMLDesc (µs)", "xml_per_call_s", us),
        ("  per getXMLDesc / no-op", "ratio_xml", ratio),
        ("getParent of every snapshot (ms)", "parent_all_s", ms),
        ("  per getParent / no-op", "ratio_parent", ratio),
        ("virsh snapshot-list --tree (ms)", "tree_s", ms),
        ("virsh snapshot-list --name (ms)", "virsh_list_names_s", ms),
        ("virsh uri, the virsh floor (ms)", "virsh_floor_s", ms),
        ("VmRSS fresh start, 0 snapshots (MiB)", "rss0_kib", mib),
        ("VmRSS fresh start, N snapshots (MiB)", "rssN_kib", mib),
        ("VmRSS after redefining N (MiB)", "rss_after_redefine_kib", mib),
        ("VmRSS after the XML of every snapshot (MiB)", "rss_after_xml_kib", mib),
        ("undefine with N snapshots (ms)", "undefine_s", ms),
    ]
    def ver(v):
        return " %d.%d.%d" % (v // 1000000, v // 1000 % 1000, v % 1000) if v else ""
    headers = ["N = %d" % args.n] + [r["target"] + ver(r.get("version")) for r in results]
    if len(results) == 2:
        headers.append("libvirtd / virtsnapd")
    table = []
    for label, key, f in rows:
        row = [label] + [g(r, key, f) for r in results]
        if len(results) == 2:
            a, b = results[0].get(key), results[1].get(key)
            row.append("%.1f×" % (b / a) if a and b and not key.startswith("ratio") else "")
        table.append(row)
    # memory per snapshot
    row = ["VmRSS per snapshot (KiB)"]
    for r in results:
        if r.get("rssN_kib") is not None and r.get("rss0_kib") is not None:
            row.append("%.2f" % ((r["rssN_kib"] - r["rss0_kib"]) / args.n))
        else:
            row.append("—")
    if len(results) == 2:
        row.append("")
    table.append(row)
    m = bl.machine_summary()
    lines = ["# bench_scale: %d snapshots by REDEFINE, %s" % (args.n, time.strftime("%Y-%m-%d %H:%M")), "",
             "Machine: %s, %s cores, %s GiB, kernel %s, %s, load %s" % (
                 m["cpu"], m["cores"], m["mem_gib"], m["kernel"], m["qemu"], " ".join(m["loadavg"])),
             "Command: `/usr/bin/python3 bench/bench_scale.py %s`" % " ".join(sys.argv[1:]), "",
             bl.md_table(headers, table), ""]
    for r in results:
        for k in ("error", "tree_error", "cleanup_error"):
            if r.get(k):
                lines.append("- %s %s: %s" % (r["target"], k, r[k]))
        if r.get("startup_samples_s"):
            lines.append("- %s start-up samples (s): %s" % (r["target"], ", ".join("%.3f" % s for s in
                                                                               r["startup_samples_s"] if s)))
    for name, why in skipped:
        lines.append("- SKIPPED %s: %s" % (name, why))
    text = "\n".join(lines) + "\n"
    print(bl.text_table(headers, table))
    path = bl.write_result("scale-%d.md" % args.n, text)
    bl.write_result("scale-%d.json" % args.n, json.dumps({"machine": m, "results": results, "skipped": skipped}, indent=1))
    print("\nwrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=1000, one start-up sample")
    ap.add_argument("-n", type=int, default=None, help="number of snapshots (default 10000)")
    ap.add_argument("--only", choices=("virtsnapd", "libvirtd"), default=None)
    ap.add_argument("--noop-reps", type=int, default=None)
    args = ap.parse_args()
    if args.n is None:
        args.n = 1000 if args.quick else 10000
    startup_samples = 1 if args.quick else 3
    noop_reps = args.noop_reps or (500 if args.quick else 2000)
    if os.geteuid() != 0:
        sys.exit("bench_scale: run as root (libvirtd comparison)")
    targets, skipped = bl.targets_from_args(args.only or "both")
    results = []
    import tempfile
    work = tempfile.mkdtemp(prefix="vsbench-scale-", dir="/var/tmp")
    measured = []
    try:
        for t in targets:
            bl.log("== %s (%s)" % (t.name, t.uri))
            try:
                results.append(run_target(t, args.n, startup_samples, noop_reps, work))
                if "redefine_s" in results[-1] and "undefine_s" not in results[-1]:
                    measured.append((t, results[-1]))
            except libvirt.libvirtError as e:
                results.append({"target": t.name, "error": e.get_error_message()})
                bl.log("%s failed: %s" % (t.name, e.get_error_message()))
        # Every deletion comes after every redefine. For minutes after many
        # inodes were freed, ext4 creates files several times slower (its
        # inode allocator skips recently deleted inodes one by one): measured
        # here, 47 us per create+rename on a quiet volume, 315-640 us after
        # 5,000 files were removed, as slow again 40 and 80 s later. A target redefining
        # right after the other's undefine and clean-up would pay for them.
        for t, res in measured:
            undefine(t, res)
    finally:
        for t in targets:
            t.cleanup()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    report(results, skipped, args)


if __name__ == "__main__":
    main()
