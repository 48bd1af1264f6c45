// qemusnapshotdeletetest.cc - the delete state machines (snapshot_delete.hh):
// the plan on real branched image trees (qemu-img), offline commits proven
// with data patterns (qemu-io), and the running-chain commit over a mock QMP
// server, with an injected failure.

#include "qemu/monitor.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_delete.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"
#include "util/file.hh"
#include "util/process.hh"

using namespace virtsnap;
using namespace virtsnap::qemu_snapshot;

namespace {

class MockControl : public DomainControl {
public:
    explicit MockControl(qemu::Monitor &mon) : mon_(mon) {}
    qemu::Monitor &monitor() override { return mon_; }
    qemu::Agent *agent(Error &) override { return nullptr; }
    bool running() override { return true; }
    Status pause(int) override { return ok(); }
    Status resume(int) override { return ok(); }
    void note_paused(int) override {}
    Status halt() override { return ok(); }
    bool abort_requested() override { return false; }

private:
    qemu::Monitor &mon_;
};

bool io(const std::string &path, const std::string &cmd) {
    auto r = process::run_capture({{"qemu-io", "-f", "qcow2", "-c", cmd, path}});
    return r && r->status.success() && r->out.find("Pattern verification failed") == std::string::npos;
}

conf::SnapshotDef external_snap(const std::string &name, const std::string &image, const std::string &overlay) {
    conf::SnapshotDef s;
    s.name = name;
    s.domain = std::make_unique<conf::DomainDef>();
    conf::DomainDisk d;
    d.target_dev = "vda";
    d.src.path = image;
    d.src.format = "qcow2";
    s.domain->disks.push_back(d);
    conf::SnapshotDiskDef sd;
    sd.name = "vda";
    sd.snapshot = conf::SnapshotLocation::External;
    sd.path = overlay;
    s.disks.push_back(sd);
    return s;
}

conf::DomainDef domain_on(const std::string &top) {
    conf::DomainDef d;
    conf::DomainDisk disk;
    disk.target_dev = "vda";
    disk.src.path = top;
    disk.src.format = "qcow2";
    d.disks.push_back(disk);
    return d;
}

void test_plan_and_commit(test::Tap &t, const std::string &dir) {
    // base <- o1 (snapshot s1's overlay) <- o2 (domain top): s1 is in the middle.
    std::string base = dir + "/base.qcow2", o1 = dir + "/o1.qcow2", o2 = dir + "/o2.qcow2";
    (void)qemu::qemu_img::create(base, "qcow2", 4 << 20);
    io(base, "write -P 0x11 0 64k");
    (void)qemu::qemu_img::create_overlay(o1, base, "qcow2");
    io(o1, "write -P 0x22 64k 64k");
    (void)qemu::qemu_img::create_overlay(o2, o1, "qcow2");
    io(o2, "write -P 0x33 128k 64k");
    conf::SnapshotDef s1 = external_snap("s1", base, o1);

    ImageRefs refs;
    refs.add_domain(domain_on(o2));
    auto plan = plan_external_delete(s1, refs, nullptr);
    t.ok(plan && plan->size() == 1 && (*plan)[0].mode == ExternalDeleteMode::Commit, "single child: commit");
    if (!plan || plan->empty()) return;
    t.eq((*plan)[0].rebase.size(), size_t(1), "the image on the overlay is rebased");
    Status st = commit_offline((*plan)[0], nullptr);
    t.ok(bool(st), "offline commit succeeds", st ? "" : st.error().message());
    auto info = qemu::qemu_img::info(o2);
    t.ok(info && ImageRefs::canonical(info->full_backing_filename) == ImageRefs::canonical(base),
         "top now backs onto base");
    t.ok(io(o2, "read -P 0x11 0 64k") && io(o2, "read -P 0x22 64k 64k") && io(o2, "read -P 0x33 128k 64k"),
         "domain view unchanged by the commit");
    auto check = qemu::qemu_img::check(base);
    t.ok(check && check->clean, "qemu-img check clean");

    conf::DomainDef dom = domain_on(o2);
    dom.disks[0].src.backing = std::make_unique<conf::StorageSource>();
    dom.disks[0].src.backing->path = o1;
    dom.disks[0].src.backing->backing = std::make_unique<conf::StorageSource>();
    dom.disks[0].src.backing->backing->path = base;
    t.ok(drop_layer_in_domain(dom, o1, base, "qcow2") && dom.disks[0].src.backing->path == base &&
             !dom.disks[0].src.backing->backing,
         "chain drops the committed layer");
    conf::DomainDef lone = domain_on(o1);
    t.ok(drop_layer_in_domain(lone, o1, base, "qcow2") && lone.disks[0].src.path == base,
         "unspelled chain: top replaced by the base");

    // Branch point: base2 <- b1 (old branch) and base2 <- r1 (revert overlay, domain top).
    std::string base2 = dir + "/base2.qcow2", b1 = dir + "/b1.qcow2", r1 = dir + "/r1.qcow2";
    (void)qemu::qemu_img::create(base2, "qcow2", 4 << 20);
    (void)qemu::qemu_img::create_overlay(b1, base2, "qcow2");
    (void)qemu::qemu_img::create_overlay(r1, base2, "qcow2");
    conf::SnapshotDef s2 = external_snap("s2", base2, b1);
    conf::SnapshotDef child = external_snap("c", b1, dir + "/c.qcow2");
    (void)qemu::qemu_img::create_overlay(dir + "/c.qcow2", b1, "qcow2");
    ImageRefs refs2;
    refs2.add_domain(domain_on(r1));
    refs2.add_snapshot(child);
    auto plan2 = plan_external_delete(s2, refs2, nullptr);
    t.ok(plan2 && (*plan2)[0].mode == ExternalDeleteMode::Keep, "branch point: images kept");
    ImageRefs refs3;
    refs3.add_domain(domain_on(r1));
    auto plan3 = plan_external_delete(s2, refs3, nullptr);
    t.ok(plan3 && (*plan3)[0].mode == ExternalDeleteMode::Drop, "abandoned overlay nobody needs: dropped");

    conf::SnapshotDef bad = s1;
    bad.disks[0].delete_in_progress = true;
    auto plan4 = plan_external_delete(bad, refs, nullptr);
    t.ok(!plan4 && plan4.error().detail == "snapshot disk 'vda' was target of not completed snapshot delete",
         "interrupted delete marker refused");
}

void run_commit(test::Tap &t, const std::string &script, bool expect_ok, const std::string &expect_error) {
    test::MockQmpServer server;
    if (!server.load_script(test::source_dir() + "/qemusnapshotdeletedata/" + script + ".qmp")) {
        t.ok(false, script + ": script loads");
        return;
    }
    server.start();
    auto mon = qemu::Monitor::connect(server.socket_path(), {});
    if (!mon) {
        t.ok(false, script + ": monitor connects", mon.error().message());
        return;
    }
    MockControl ctl(**mon);
    ExternalDiskDelete d;
    d.target = "vda";
    d.overlay = "/x/o.qcow2";
    d.base = "/x/b.qcow2";
    d.running_depth = 0;
    d.mode = ExternalDeleteMode::Commit;
    std::vector<qemu::DiskNodeNames> graph{
        {"vda", {{3, "libvirt-3-storage", "libvirt-3-format"}, {2, "libvirt-2-storage", "libvirt-2-format"}}}};
    Status st = commit_online(ctl, d, graph, nullptr, std::chrono::seconds(10));
    t.eq(bool(st), expect_ok, script + ": outcome");
    if (!st) t.eq(st.error().message(), expect_error, script + ": libvirt's error");
    t.eq(graph[0].layers.size(), size_t(expect_ok ? 1 : 2), script + ": block graph");
    mon->reset();
    auto problems = server.finish();
    std::string all;
    for (const auto &p : problems) all += p + "\n";
    t.ok(problems.empty(), script + ": conversation as scripted", all);
}

}  // namespace

// The plan survives the commit record unchanged (recovery rolls forward from it).
void test_commit_record(test::Tap &t) {
    std::vector<ExternalDiskDelete> plan(2);
    plan[0] = {"vda", "/i/o: 1.qcow2", "/i/b.qcow2", "qcow2", ExternalDeleteMode::Commit, {"/i/c1", "/i/c2"}, 0};
    plan[1] = {"vdb", "/i/o2", "/i/b2", "raw", ExternalDeleteMode::Keep, {}, -1};
    auto back = external_delete_from_commit(external_delete_commit_fields(plan));
    bool same = back && back->size() == 2;
    for (size_t i = 0; same && i < 2; ++i) {
        const auto &a = plan[i], &b = (*back)[i];
        same = a.target == b.target && a.overlay == b.overlay && a.base == b.base && a.base_format == b.base_format &&
               a.mode == b.mode && a.rebase == b.rebase && a.running_depth == b.running_depth;
    }
    t.ok(same, "external delete plan round-trips through the commit record");
}

int main() {
    test::Tap t;
    test_commit_record(t);
    std::string dir = test::temp_dir("snapdelete");
    if (!process::run_capture({{"qemu-io", "--version"}})) t.skip("qemu-img tests", "qemu-utils not installed");
    else test_plan_and_commit(t, dir);
    run_commit(t, "active-commit", true, "");
    run_commit(t, "commit-error", false,
               "internal error: block commit failed while deleting disk 'vda' snapshot: 'internal error: unable to "
               "execute QEMU command 'block-commit': injected commit failure'");
    return t.finish();
}
