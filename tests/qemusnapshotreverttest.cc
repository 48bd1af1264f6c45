// qemusnapshotreverttest.cc - the revert state machines: every edge of the
// diagrams in snapshot_revert.hh. Shut-off paths run real qemu-img and
// qemu-io on scratch images; the QEMU paths replay QMP conversations with
// injected errors (tests/qemusnapshotrevertdata/*.qmp), among them a load
// that fails after QEMU began loading (the guest must stay paused).

#include "qemu/monitor.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"
#include "util/file.hh"
#include "util/process.hh"

#include <libvirt/libvirt.h>

using namespace virtsnap;
using namespace virtsnap::qemu_snapshot;

namespace {

// DomainControl over a monitor connected to the mock server.
class MockControl : public DomainControl {
public:
    explicit MockControl(qemu::Monitor &mon) : mon_(mon) {}
    qemu::Monitor &monitor() override { return mon_; }
    qemu::Agent *agent(Error &) override { return nullptr; }
    bool running() override { return running_; }
    Status pause(int) override {
        TRY(mon_.stop());
        running_ = false;
        return ok();
    }
    Status resume(int) override {
        TRY(mon_.cont());
        running_ = true;
        return ok();
    }
    void note_paused(int) override {}
    Status halt() override { return ok(); }
    bool abort_requested() override { return false; }

private:
    qemu::Monitor &mon_;
    bool running_ = true;
};

bool qemu_io_ok(const std::string &path, const std::string &cmd) {
    auto r = process::run_capture({{"qemu-io", "-f", "qcow2", "-c", cmd, path}});
    return r && r->status.success() && r->out.find("Pattern verification failed") == std::string::npos;
}

conf::DomainDisk disk(const std::string &target, const std::string &path) {
    conf::DomainDisk d;
    d.target_dev = target;
    d.src.path = path;
    d.src.format = "qcow2";
    return d;
}

conf::SnapshotDiskDef snapdisk(const std::string &target, conf::SnapshotLocation loc) {
    conf::SnapshotDiskDef d;
    d.name = target;
    d.snapshot = loc;
    return d;
}

bool has_tag(const std::string &path, const std::string &tag) {
    auto snaps = qemu::qemu_img::snapshot_list(path);
    if (!snaps) return false;
    for (const auto &s : *snaps)
        if (s.name == tag) return true;
    return false;
}

void test_internal_inactive(test::Tap &t, const std::string &dir) {
    std::string a = dir + "/a.qcow2", b = dir + "/b.qcow2";
    for (const auto &p : {a, b}) {
        (void)qemu::qemu_img::create(p, "qcow2", 4 << 20);
        qemu_io_ok(p, "write -P 0xaa 0 64k");
        (void)qemu::qemu_img::snapshot_create(p, "s1");
        qemu_io_ok(p, "write -P 0xbb 0 64k");
    }
    conf::DomainDef dom;
    dom.name = "vm";
    dom.disks = {disk("vda", a), disk("vdb", b)};
    conf::SnapshotDef snap;
    snap.name = "s1";
    snap.disks = {snapdisk("vda", conf::SnapshotLocation::Internal), snapdisk("vdb", conf::SnapshotLocation::Internal)};

    // Edge: a disk without the tag -> refused, nothing touched.
    conf::SnapshotDef other = snap;
    other.name = "nope";
    Status st = revert_internal_inactive(other, dom, nullptr);
    t.ok(!st && st.error().code == VIR_ERR_OPERATION_INVALID, "missing tag refused",
         st ? "" : st.error().message());
    t.ok(qemu_io_ok(a, "read -P 0xbb 0 64k") && qemu_io_ok(b, "read -P 0xbb 0 64k"), "missing tag: disks untouched");

    // Edge: success -> every disk at the snapshot, undo tags gone.
    st = revert_internal_inactive(snap, dom, nullptr);
    t.ok(bool(st), "internal shut-off revert succeeds", st ? "" : st.error().message());
    t.ok(qemu_io_ok(a, "read -P 0xaa 0 64k") && qemu_io_ok(b, "read -P 0xaa 0 64k"), "disks read the snapshot's data");
    t.ok(!has_tag(a, std::string(kRevertUndoTag)) && !has_tag(b, std::string(kRevertUndoTag)), "undo tags dropped");
    t.ok(has_tag(a, "s1") && has_tag(b, "s1"), "snapshot tag kept");

    // Edge: a stale undo tag from a crash after the commit is replaced.
    (void)qemu::qemu_img::snapshot_create(a, std::string(kRevertUndoTag));
    qemu_io_ok(a, "write -P 0xcc 0 64k");
    st = revert_internal_inactive(snap, dom, nullptr);
    t.ok(bool(st) && qemu_io_ok(a, "read -P 0xaa 0 64k"), "stale undo tag does not block a revert");

    // Edge: the second disk cannot be written after the first was reverted ->
    // the first disk is rolled back to its pre-revert data.
    qemu_io_ok(a, "write -P 0xdd 0 64k");
    conf::DomainDef broken = dom;
    broken.disks[1].src.path = dir + "/missing.qcow2";
    st = revert_internal_inactive(snap, broken, nullptr);
    t.ok(!st, "revert with an unreadable disk fails before touching a disk");
    t.ok(qemu_io_ok(a, "read -P 0xdd 0 64k"), "failed revert leaves the first disk unchanged");
}

void test_external_prepare(test::Tap &t, const std::string &dir) {
    std::string base = dir + "/base.qcow2";
    (void)qemu::qemu_img::create(base, "qcow2", 4 << 20);
    t.eq(revert_overlay_path(base, "s1"), dir + "/base.s1-revert1", "overlay name");
    conf::DomainDef dom;
    dom.name = "vm";
    dom.disks = {disk("vda", base)};
    conf::SnapshotDef snap;
    snap.name = "s1";
    snap.disks = {snapdisk("vda", conf::SnapshotLocation::External)};
    snap.disks[0].path = dir + "/base.s1";
    {
        Txn txn;
        auto r = revert_external_prepare(snap, dom, txn, nullptr);
        t.ok(bool(r), "external prepare succeeds", r ? "" : r.error().message());
        if (!r) return;
        std::string ov = r->overlays.at(0);
        auto info = qemu::qemu_img::info(ov);
        t.ok(info && info->full_backing_filename == base, "new overlay backs onto the snapshot's image");
        t.eq(r->def->disks[0].src.path, ov, "definition runs on the new overlay");
        t.ok(r->def->disks[0].src.backing && r->def->disks[0].src.backing->path == base, "chain spelled out");
        t.eq(revert_overlay_path(base, "s1"), dir + "/base.s1-revert2", "next overlay name skips the used one");
        (void)txn.abort(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "x"));
        t.ok(!file::exists(ov), "rollback unlinks the new overlay");
    }
    conf::SnapshotDef bad = snap;
    bad.disks[0].name = "vdz";
    Txn txn;
    auto r = revert_external_prepare(bad, dom, txn, nullptr);
    t.ok(!r && r.error().detail == "failed to find disk 'vdz' in snapshot VM XML", "unknown disk refused");
}

void run_script(test::Tap &t, const std::string &name, bool expect_ok, const std::string &expect_error,
                bool expect_running, bool expect_partly_loaded = false) {
    test::MockQmpServer server;
    if (!server.load_script(test::source_dir() + "/qemusnapshotrevertdata/" + name + ".qmp")) {
        t.ok(false, name + ": script loads");
        return;
    }
    server.start();
    auto mon = qemu::Monitor::connect(server.socket_path(), {});
    if (!mon) {
        t.ok(false, name + ": monitor connects", mon.error().message());
        return;
    }
    MockControl ctl(**mon);
    InternalActiveRevert req;
    req.ctl = &ctl;
    req.tag = "s1";
    req.devices = {"libvirt-1-format", "libvirt-2-format"};
    req.vmstate = "libvirt-1-format";
    req.job_timeout = std::chrono::seconds(10);
    Status st = revert_internal_active(req);
    t.eq(bool(st), expect_ok, name + ": outcome");
    t.eq(req.partly_loaded, expect_partly_loaded, name + ": partly loaded");
    if (!st) t.eq(st.error().message(), expect_error, name + ": first error kept");
    t.eq(ctl.running(), expect_running, name + ": run state after");
    mon->reset();
    auto problems = server.finish();
    std::string all;
    for (const auto &p : problems) all += p + "\n";
    t.ok(problems.empty(), name + ": conversation as scripted", all);
}

}  // namespace

int main() {
    test::Tap t;
    std::string dir = test::temp_dir("snaprevert");
    if (!process::run_capture({{"qemu-img", "--version"}})) {
        t.skip("qemu-img tests", "qemu-img not installed");
    } else {
        test_internal_inactive(t, dir);
        test_external_prepare(t, dir);
    }
    t.ok(snapshot_load_failed_before_loading("Snapshot 's1' does not exist in one or more devices") &&
             snapshot_load_failed_before_loading("This is a disk-only snapshot. Revert to it offline using qemu-img"),
         "QEMU's checks before loading are told apart");
    t.ok(!snapshot_load_failed_before_loading("Error -22 while loading VM state") &&
             !snapshot_load_failed_before_loading("Could not load snapshot 's1' on 'libvirt-2-format': EIO") &&
             !snapshot_load_failed_before_loading(""),
         "errors while loading, and unknown ones, count as partly loaded");
    run_script(t, "load-ok", true, "", false);
    run_script(t, "load-cmd-error", false,
               "internal error: unable to execute QEMU command 'snapshot-load': Job ID 'snapshot-load' already in use",
               true);
    run_script(t, "load-job-error", false,
               "operation failed: Failed to revert snapshot: Snapshot 's1' does not exist in one or more devices",
               true);
    run_script(t, "load-job-late-error", false,
               "operation failed: Failed to revert snapshot: Error -22 while loading VM state (the guest is left "
               "paused and may be partly at the snapshot: revert again or destroy it)",
               false, true);
    run_script(t, "stop-error", false,
               "internal error: unable to execute QEMU command 'stop': injected stop failure", true);
    return t.finish();
}
