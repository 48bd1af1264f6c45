// qemusnapshotcreatetest.cc - the snapshot creation state machines, edge by
// edge: running machines against a mock QEMU (scripted QMP conversations in
// qemusnapshotdata/, one per edge of the diagrams in snapshot_create.hh) with
// real overlay files made by qemu-img; shut-off machines against real images.

#include "conf/snapshot_align.hh"
#include "qemu/monitor.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "qemu_snapshot/snapshot_memory.hh"
#include "qemu_snapshot/snapshot_prepare.hh"
#include "qemu_snapshot/txn.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"
#include "util/file.hh"

#include <libvirt/libvirt.h>

#include <cstring>
#include <fstream>
#include <regex>

using namespace virtsnap;
using namespace virtsnap::qemu_snapshot;
using virtsnap::test::MockQmpServer;
using virtsnap::test::Tap;
using conf::SnapshotLocation;

namespace {

std::string g_dir;

bool have_qemu_img() { return std::system("qemu-img --version >/dev/null 2>&1") == 0; }

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    return s;
}

// The conversation file with @DIR@ replaced by this run's directory.
std::string script(const std::string &name) {
    std::string text = test::read_text(test::source_dir() + "/qemusnapshotdata/" + name + ".qmp");
    std::string out = g_dir + "/" + name + ".qmp";
    (void)file::write_atomic(out, replace_all(text, "@DIR@", g_dir));
    return out;
}

struct MockControl : DomainControl {
    qemu::Monitor *mon = nullptr;
    bool run = true;
    int halts = 0;
    int abort_after = -1;
    int abort_calls = 0;
    std::vector<std::string> phases;
    qemu::Monitor &monitor() override { return *mon; }
    qemu::Agent *agent(Error &why) override {
        why = qemu::Agent::not_configured_error();
        return nullptr;
    }
    bool running() override { return run; }
    Status pause(int) override {
        TRY(mon->stop());
        run = false;
        return ok();
    }
    Status resume(int) override {
        TRY(mon->cont());
        run = true;
        return ok();
    }
    Status halt() override {
        ++halts;
        run = false;
        return ok();
    }
    bool abort_requested() override { return abort_after >= 0 && abort_calls++ >= abort_after; }
    void set_phase(const std::string &p) override { phases.push_back(p); }
};

std::unique_ptr<conf::DomainDef> domain(const std::string &fmt_b = "qcow2") {
    std::string xml = "<domain type='qemu'><name>vm1</name><uuid>11111111-2222-3333-4444-555555555555</uuid>"
                      "<memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
                      "<devices>"
                      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" +
                      g_dir + "/a.qcow2'/><target dev='vda' bus='virtio'/></disk>"
                      "<disk type='file' device='disk'><driver name='qemu' type='" + fmt_b + "'/><source file='" +
                      g_dir + "/b.qcow2'/><target dev='vdb' bus='virtio'/></disk>"
                      "</devices></domain>";
    auto d = conf::DomainDef::parse_string(xml, conf::kDomainParseInactive);
    if (!d) {
        std::fprintf(stderr, "domain parse: %s\n", d.error().message().c_str());
        std::abort();
    }
    return std::move(d).value();
}

std::vector<qemu::DiskNodeNames> graph() {
    return {{"vda", {{1, "libvirt-1-storage", "libvirt-1-format"}}},
            {"vdb", {{2, "libvirt-2-storage", "libvirt-2-format"}}}};
}

void fresh_images() {
    for (const char *n : {"a.qcow2", "b.qcow2", "a.s1", "b.s1", "mem.s1"}) (void)file::remove(g_dir + "/" + n);
    (void)qemu::qemu_img::create(g_dir + "/a.qcow2", "qcow2", 1 << 20);
    (void)qemu::qemu_img::create(g_dir + "/b.qcow2", "qcow2", 1 << 20);
}

SnapshotPlan plan_for(SnapshotLocation loc, unsigned flags, SnapshotLocation memory = SnapshotLocation::No) {
    SnapshotPlan p;
    p.flags = flags;
    p.memory = memory;
    p.memory_file = g_dir + "/mem.s1";
    for (size_t i = 0; i < 2; ++i) {
        DiskPlan d;
        d.disk_index = i;
        d.target = i == 0 ? "vda" : "vdb";
        d.location = loc;
        d.overlay_path = g_dir + (i == 0 ? "/a.s1" : "/b.s1");
        p.disks.push_back(d);
    }
    p.has_internal = loc == SnapshotLocation::Internal;
    p.has_external = loc == SnapshotLocation::External;
    return p;
}

struct Run {
    MockQmpServer server;
    std::unique_ptr<qemu::Monitor> mon;
    MockControl ctl;
    explicit Run(const std::string &name) {
        server.load_script(script(name));
        server.start();
        qemu::Monitor::Options o;
        o.vm_name = "vm1";
        o.timeout = std::chrono::milliseconds(5000);
        auto m = qemu::Monitor::connect(server.socket_path(), o);
        if (m) mon = std::move(m).value();
        ctl.mon = mon.get();
    }
    void check(Tap &tap, const std::string &name) {
        mon.reset();
        auto problems = server.finish();
        std::string all;
        for (const auto &p : problems) all += p + "\n";
        tap.ok(problems.empty(), name + ": conversation as scripted", all);
    }
};

Result<ActiveResult> run_machine(Run &r, const SnapshotPlan &plan, const conf::DomainDef &dom, bool internal,
                                 MemoryWriter writer = {}) {
    conf::SnapshotDef def;
    def.name = "s1";
    ActiveRequest req;
    req.ctl = &r.ctl;
    req.def = &def;
    req.plan = &plan;
    req.live = &dom;
    req.graph = graph();
    req.next_node_index = 3;
    req.memory_writer = std::move(writer);
    req.job_timeout = std::chrono::seconds(10);
    return internal ? create_internal_active(std::move(req)) : create_external_active(std::move(req));
}

bool no_overlays() { return !file::exists(g_dir + "/a.s1") && !file::exists(g_dir + "/b.s1"); }

void test_txn(Tap &tap) {
    std::vector<std::string> order;
    {
        Txn t;
        t.add_undo("one", [&] { order.push_back("one"); return Status(); });
        t.add_undo("two", [&]() -> Status {
            order.push_back("two");
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "undo failed");
        });
        Error e = t.abort(make_error(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "first"));
        tap.eq(e.detail, std::string("first"), "txn: abort keeps the first error");
    }
    tap.ok(order == std::vector<std::string>{"two", "one"}, "txn: undos run in reverse, past a failing undo");
    order.clear();
    {
        Txn t;
        t.add_undo("x", [&] { order.push_back("x"); return Status(); });
        t.commit();
    }
    tap.ok(order.empty(), "txn: commit drops the undos");
    {
        Txn t;
        t.add_undo("y", [&] { order.push_back("y"); return Status(); });
    }
    tap.ok(order == std::vector<std::string>{"y"}, "txn: destroyed uncommitted -> rolled back");
}

void test_external_active(Tap &tap) {
    auto dom = domain();
    auto plan = plan_for(SnapshotLocation::External, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY);
    {
        fresh_images();
        Run r("ext-ok");
        auto res = run_machine(r, plan, *dom, false);
        tap.ok(res.has_value(), "ext-ok: succeeds", res ? "" : res.error().message());
        if (res) {
            tap.eq(res->graph[0].top_node(), std::string("libvirt-3-format"), "ext-ok: vda top is the overlay");
            tap.eq(res->graph[1].top_node(), std::string("libvirt-4-format"), "ext-ok: vdb top is the overlay");
            tap.eq(res->graph[0].layers.size(), size_t(2), "ext-ok: old top kept below");
            tap.eq(res->next_node_index, 5u, "ext-ok: node index advanced");
            const auto &src = res->live->disks[0].src;
            tap.ok(src.path == g_dir + "/a.s1" && src.backing && src.backing->path == g_dir + "/a.qcow2" &&
                       src.backing->readonly && src.index == 3,
                   "ext-ok: live definition: overlay on top, old source read-only backing");
            tap.ok(r.ctl.run && r.ctl.halts == 0, "ext-ok: guest never paused");
        }
        auto info = qemu::qemu_img::info(g_dir + "/b.s1");
        tap.ok(info && info->format == "qcow2" && info->backing_filename == g_dir + "/b.qcow2",
               "ext-ok: overlay file is qcow2 on the old source");
        r.check(tap, "ext-ok");
    }
    for (const char *name : {"ext-fail-storage", "ext-fail-format", "ext-fail-transaction"}) {
        fresh_images();
        Run r(name);
        auto res = run_machine(r, plan, *dom, false);
        tap.ok(!res && res.error().detail.find("injected failure") != std::string::npos,
               std::string(name) + ": fails with QEMU's error", res ? "succeeded" : res.error().message());
        tap.ok(no_overlays(), std::string(name) + ": no overlay file left");
        tap.ok(r.ctl.run, std::string(name) + ": guest still running");
        r.check(tap, name);
    }
    {
        fresh_images();
        Run r("ext-abort");
        r.ctl.abort_after = 0;
        auto res = run_machine(r, plan, *dom, false);
        tap.ok(!res && res.error().code == VIR_ERR_OPERATION_ABORTED, "ext-abort: OPERATION_ABORTED",
               res ? "succeeded" : res.error().message());
        tap.ok(no_overlays(), "ext-abort: no overlay file left");
        r.check(tap, "ext-abort");
    }
    {
        fresh_images();
        Run r("ext-halt");
        auto p = plan_for(SnapshotLocation::External,
                          VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_HALT);
        auto res = run_machine(r, p, *dom, false);
        tap.ok(res && res->halted && r.ctl.halts == 1, "ext-halt: halted after the commit");
        r.check(tap, "ext-halt");
    }
    {
        fresh_images();
        Run r("ext-ok");
        (void)file::write_atomic(g_dir + "/a.s1", "");  // an empty file prepared by the user is accepted
        auto p = plan;
        p.disks[0].existed = true;
        auto res = run_machine(r, p, *dom, false);
        tap.ok(res.has_value(), "ext-existing-empty: succeeds");
        r.check(tap, "ext-existing-empty");
    }
    {
        // Quiesce without an agent: refused before anything is touched (no QMP at all).
        fresh_images();
        MockQmpServer server;
        server.start();
        qemu::Monitor::Options o;
        o.vm_name = "vm1";
        auto mon = qemu::Monitor::connect(server.socket_path(), o);
        MockControl ctl;
        ctl.mon = mon ? mon->get() : nullptr;
        auto p = plan_for(SnapshotLocation::External,
                          VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE);
        conf::SnapshotDef def;
        def.name = "s1";
        ActiveRequest req;
        req.ctl = &ctl;
        req.def = &def;
        req.plan = &p;
        req.live = dom.get();
        req.graph = graph();
        auto res = create_external_active(std::move(req));
        tap.ok(!res && res.error().code == VIR_ERR_ARGUMENT_UNSUPPORTED &&
                   res.error().detail == "QEMU guest agent is not configured",
               "ext-quiesce: no agent -> libvirt's error", res ? "succeeded" : res.error().message());
        tap.ok(no_overlays(), "ext-quiesce: nothing created");
        mon = Result<std::unique_ptr<qemu::Monitor>>(nullptr);
        auto problems = server.finish();
        tap.ok(problems.empty() && server.received().size() <= 1, "ext-quiesce: no QMP command sent");
    }
}

void test_external_memory(Tap &tap) {
    auto dom = domain();
    auto plan = plan_for(SnapshotLocation::External, 0, SnapshotLocation::External);
    {
        fresh_images();
        Run r("ext-memory-fail");
        bool was_paused = false;
        auto res = run_machine(r, plan, *dom, false, [&](DomainControl &c, const std::string &, bool, MemoryFlush *) -> Status {
            was_paused = !c.running();
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "memory failure");
        });
        tap.ok(!res && res.error().detail == "memory failure", "ext-memory-fail: the writer's error");
        tap.ok(was_paused && r.ctl.run, "ext-memory-fail: paused for the write, resumed after");
        tap.ok(no_overlays() && !file::exists(g_dir + "/mem.s1"), "ext-memory-fail: no file left");
        r.check(tap, "ext-memory-fail");
    }
    {
        fresh_images();
        Run r("ext-memory-ok");
        auto res = run_machine(r, plan, *dom, false, [&](DomainControl &, const std::string &path, bool, MemoryFlush *) -> Status {
            return file::write_atomic(path, "RAM");
        });
        tap.ok(res && r.ctl.run && file::exists(g_dir + "/mem.s1"), "ext-memory-ok: image written, resumed",
               res ? "" : res.error().message());
        r.check(tap, "ext-memory-ok");
    }
    {
        // The writer leaves the flush: it runs after the switch, with the guest running.
        fresh_images();
        Run r("ext-flush-deferred-ok");
        bool offered = false, flushed = false, running_at_flush = false;
        auto res = run_machine(r, plan, *dom, false,
                               [&](DomainControl &, const std::string &path, bool, MemoryFlush *deferred) -> Status {
                                   TRY(file::write_atomic(path, "RAM"));
                                   offered = deferred != nullptr;
                                   if (deferred)
                                       *deferred = [&]() -> Status {
                                           flushed = true;
                                           running_at_flush = r.ctl.run;
                                           return ok();
                                       };
                                   return ok();
                               });
        tap.ok(res && offered && flushed && running_at_flush && r.ctl.run && file::exists(g_dir + "/mem.s1") &&
                   res->graph[0].top_node() == "libvirt-3-format",
               "ext-flush-deferred-ok: disks switched, guest resumed, then the image flushed",
               res ? "" : res.error().message());
        r.check(tap, "ext-flush-deferred-ok");
    }
    {
        // The deferred flush fails: the switch is undone (block-commit back) with the guest running.
        fresh_images();
        Run r("ext-flush-deferred-fails");
        auto res = run_machine(r, plan, *dom, false,
                               [&](DomainControl &, const std::string &path, bool, MemoryFlush *deferred) -> Status {
                                   TRY(file::write_atomic(path, "RAM"));
                                   if (deferred)
                                       *deferred = []() -> Status {
                                           return fail(VIR_ERR_SYSTEM_ERROR, VIR_FROM_QEMU,
                                                       "unable to sync file: Input/output error");
                                       };
                                   return ok();
                               });
        tap.ok(!res && res.error().detail == "unable to sync file: Input/output error",
               "ext-flush-deferred-fails: the flush's error");
        tap.ok(r.ctl.run && no_overlays() && !file::exists(g_dir + "/mem.s1"),
               "ext-flush-deferred-fails: overlays committed back, guest running, no file left");
        r.check(tap, "ext-flush-deferred-fails");
    }
    {
        // The resume before the flush fails: the switch is undone, the flush never runs.
        fresh_images();
        Run r("ext-flush-deferred-resume-fails");
        bool flushed = false;
        auto res = run_machine(r, plan, *dom, false,
                               [&](DomainControl &, const std::string &path, bool, MemoryFlush *deferred) -> Status {
                                   TRY(file::write_atomic(path, "RAM"));
                                   if (deferred)
                                       *deferred = [&]() -> Status {
                                           flushed = true;
                                           return ok();
                                       };
                                   return ok();
                               });
        tap.ok(!res && res.error().detail.find("injected failure") != std::string::npos && !flushed,
               "ext-flush-deferred-resume-fails: QEMU's error, no flush", res ? "succeeded" : res.error().message());
        tap.ok(r.ctl.run && no_overlays() && !file::exists(g_dir + "/mem.s1"),
               "ext-flush-deferred-resume-fails: overlays committed back, guest resumed by the undo, no file left");
        r.check(tap, "ext-flush-deferred-resume-fails");
    }
    {
        // HALT: the guest must not run again, so no flush is offered to the writer.
        fresh_images();
        auto halt_plan =
            plan_for(SnapshotLocation::External, VIR_DOMAIN_SNAPSHOT_CREATE_HALT, SnapshotLocation::External);
        Run r("ext-memory-halt");
        bool offered = true;
        auto res = run_machine(r, halt_plan, *dom, false,
                               [&](DomainControl &, const std::string &path, bool, MemoryFlush *deferred) -> Status {
                                   offered = deferred != nullptr;
                                   return file::write_atomic(path, "RAM");
                               });
        tap.ok(res && res->halted && !offered && r.ctl.halts == 1,
               "ext-memory-halt: no deferred flush offered, halted after the commit", res ? "" : res.error().message());
        r.check(tap, "ext-memory-halt");
    }
    {
        fresh_images();
        Run r("ext-pause-fail");
        bool called = false;
        auto res = run_machine(r, plan, *dom, false, [&](DomainControl &, const std::string &, bool, MemoryFlush *) -> Status {
            called = true;
            return ok();
        });
        tap.ok(!res && !called && no_overlays(), "ext-pause-fail: fails before the memory write");
        r.check(tap, "ext-pause-fail");
    }
}

Result<ActiveResult> run_instant(Run &r, const SnapshotPlan &plan, const conf::DomainDef &dom, MemoryWriter writer) {
    conf::SnapshotDef def;
    def.name = "s1";
    ActiveRequest req;
    req.ctl = &r.ctl;
    req.def = &def;
    req.plan = &plan;
    req.live = &dom;
    req.graph = graph();
    req.next_node_index = 3;
    req.memory_writer = std::move(writer);
    req.instant = true;
    req.job_timeout = std::chrono::seconds(10);
    return create_external_active(std::move(req));
}

void test_instant(Tap &tap) {
    auto dom = domain();
    auto plan = plan_for(SnapshotLocation::External, VIR_DOMAIN_SNAPSHOT_CREATE_LIVE, SnapshotLocation::External);
    {
        fresh_images();
        Run r("instant-ok");
        bool stopped_at_capture = false, live_arg = false;
        auto res = run_instant(r, plan, *dom, [&](DomainControl &c, const std::string &path, bool live, MemoryFlush *) -> Status {
            stopped_at_capture = !c.running();
            live_arg = live;
            r.ctl.run = true;  // QEMU resumes the guest once write tracking is set up
            return file::write_atomic(path, "RAM");
        });
        tap.ok(res && stopped_at_capture && live_arg && r.ctl.run && res->graph[0].top_node() == "libvirt-3-format",
               "instant-ok: stop, switch, capture while stopped; the guest runs on", res ? "" : res.error().message());
        r.check(tap, "instant-ok");
    }
    {
        fresh_images();
        Run r("instant-memory-fails");
        auto res = run_instant(r, plan, *dom, [&](DomainControl &, const std::string &, bool, MemoryFlush *) -> Status {
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "snapshot job: No space left on device");
        });
        tap.ok(!res && res.error().detail == "snapshot job: No space left on device",
               "instant-memory-fails: the migration's error");
        tap.ok(r.ctl.run && no_overlays() && !file::exists(g_dir + "/mem.s1"),
               "instant-memory-fails: overlays committed back, guest resumed, no file left");
        r.check(tap, "instant-memory-fails");
    }
    {
        fresh_images();
        Run r("instant-transaction-fails");
        bool called = false;
        auto res = run_instant(r, plan, *dom, [&](DomainControl &, const std::string &, bool, MemoryFlush *) -> Status {
            called = true;
            return ok();
        });
        tap.ok(!res && !called && r.ctl.run && no_overlays(),
               "instant-transaction-fails: no capture, guest resumed, no overlay");
        r.check(tap, "instant-transaction-fails");
    }
}

void test_internal_active(Tap &tap) {
    auto dom = domain();
    auto plan = plan_for(SnapshotLocation::Internal, 0, SnapshotLocation::Internal);
    {
        fresh_images();
        Run r("int-ok-running");
        auto res = run_machine(r, plan, *dom, true);
        tap.ok(res && r.ctl.run, "int-ok-running: snapshot taken, guest resumed", res ? "" : res.error().message());
        r.check(tap, "int-ok-running");
    }
    {
        fresh_images();
        Run r("int-ok-paused");
        r.ctl.run = false;
        auto res = run_machine(r, plan, *dom, true);
        tap.ok(res && !r.ctl.run, "int-ok-paused: a paused domain stays paused");
        r.check(tap, "int-ok-paused");
    }
    {
        fresh_images();
        Run r("int-job-fails");
        auto res = run_machine(r, plan, *dom, true);
        tap.ok(!res && res.error().code == VIR_ERR_OPERATION_FAILED &&
                   res.error().detail == "Failed to take snapshot: Error while writing VM state: No space left on device",
               "int-job-fails: the job's error", res ? "succeeded" : res.error().message());
        tap.ok(r.ctl.run, "int-job-fails: guest resumed");
        r.check(tap, "int-job-fails");
    }
    {
        fresh_images();
        Run r("int-save-refused");
        auto res = run_machine(r, plan, *dom, true);
        tap.ok(!res && res.error().detail.find("injected failure") != std::string::npos && r.ctl.run,
               "int-save-refused: QEMU's error, guest resumed");
        r.check(tap, "int-save-refused");
    }
    {
        fresh_images();
        Run r("int-stop-fails");
        auto res = run_machine(r, plan, *dom, true);
        tap.ok(!res && r.ctl.run, "int-stop-fails: error, guest still running");
        r.check(tap, "int-stop-fails");
    }
    {
        fresh_images();
        Run r("int-halt");
        auto p = plan;
        p.flags |= VIR_DOMAIN_SNAPSHOT_CREATE_HALT;
        auto res = run_machine(r, p, *dom, true);
        tap.ok(res && res->halted && r.ctl.halts == 1, "int-halt: halted instead of resumed");
        r.check(tap, "int-halt");
    }
    {
        // A tag already in an image: refused before the pause (no QMP at all).
        fresh_images();
        (void)qemu::qemu_img::snapshot_create(g_dir + "/b.qcow2", "s1");
        MockQmpServer server;
        server.start();
        qemu::Monitor::Options o;
        o.vm_name = "vm1";
        auto mon = qemu::Monitor::connect(server.socket_path(), o);
        Run *unused = nullptr;
        (void)unused;
        MockControl ctl;
        ctl.mon = mon ? mon->get() : nullptr;
        conf::SnapshotDef def;
        def.name = "s1";
        ActiveRequest req;
        req.ctl = &ctl;
        req.def = &def;
        req.plan = &plan;
        req.live = dom.get();
        req.graph = graph();
        auto res = create_internal_active(std::move(req));
        tap.ok(!res && res.error().detail.find("already exists") != std::string::npos && ctl.run,
               "int-tag-exists: refused before anything is touched");
        auto snaps = qemu::qemu_img::snapshot_list(g_dir + "/b.qcow2");
        tap.ok(snaps && snaps->size() == 1, "int-tag-exists: the existing snapshot is kept");
        mon = Result<std::unique_ptr<qemu::Monitor>>(nullptr);
        tap.ok(server.finish().empty(), "int-tag-exists: no QMP command sent");
    }
}

void test_inactive(Tap &tap) {
    JournalFields none;
    conf::SnapshotDef def;
    def.name = "s1";
    {
        fresh_images();
        auto dom = domain();
        auto plan = plan_for(SnapshotLocation::Internal, 0);
        auto st = create_internal_inactive(def, plan, *dom, nullptr, none);
        auto a = qemu::qemu_img::snapshot_list(g_dir + "/a.qcow2");
        auto b = qemu::qemu_img::snapshot_list(g_dir + "/b.qcow2");
        tap.ok(st && a && b && a->size() == 1 && b->size() == 1 && (*a)[0].name == "s1",
               "internal-inactive: every disk has the snapshot", st ? "" : st.error().message());
    }
    {
        // Disk 2 cannot take it (a raw image): disk 1's snapshot is removed again.
        fresh_images();
        (void)file::remove(g_dir + "/b.qcow2");
        (void)qemu::qemu_img::create(g_dir + "/b.qcow2", "raw", 1 << 20);
        auto dom = domain("qcow2");  // claims qcow2: qemu-img fails on the raw file
        auto plan = plan_for(SnapshotLocation::Internal, 0);
        auto st = create_internal_inactive(def, plan, *dom, nullptr, none);
        auto a = qemu::qemu_img::snapshot_list(g_dir + "/a.qcow2");
        tap.ok(!st, "internal-inactive disk 2 fails: error", st ? "succeeded" : st.error().message());
        tap.ok(a && a->empty(), "internal-inactive disk 2 fails: disk 1 rolled back");
    }
    {
        fresh_images();
        auto dom = domain();
        auto plan = plan_for(SnapshotLocation::External, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY);
        auto res = create_external_inactive(def, plan, *dom, nullptr, none);
        tap.ok(res && (*res)->disks[0].src.path == g_dir + "/a.s1" && (*res)->disks[1].src.path == g_dir + "/b.s1",
               "external-inactive: definition moves to the overlays", res ? "" : res.error().message());
        auto info = qemu::qemu_img::info(g_dir + "/a.s1");
        tap.ok(info && info->backing_filename == g_dir + "/a.qcow2" && info->backing_format == "qcow2",
               "external-inactive: overlay records its backing and format");
    }
    {
        fresh_images();
        auto dom = domain();
        auto plan = plan_for(SnapshotLocation::External, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY);
        plan.disks[1].overlay_path = g_dir + "/missing-dir/b.s1";
        auto res = create_external_inactive(def, plan, *dom, nullptr, none);
        tap.ok(!res && no_overlays(), "external-inactive disk 2 fails: disk 1's overlay removed");
    }
    {
        // A journal records the intents and the commit.
        fresh_images();
        auto dom = domain();
        auto plan = plan_for(SnapshotLocation::Internal, 0);
        JournalHeader h{"snapshot-create", "11111111-2222-3333-4444-555555555555", "", {}};
        auto j = JobJournal::create(g_dir + "/journal", h);
        Status st = j ? create_internal_inactive(def, plan, *dom, &*j, {{"metadata", "x"}}) : Status();
        auto state = j ? JobJournal::read(j->path()) : Result<JournalState>(fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "no journal"));
        tap.ok(st && state && state->steps.size() == 2 && state->steps[0].done && state->committed &&
                   state->commit_fields.str("metadata") == "x",
               "journal: an intent per disk, then the commit");
        if (j) (void)j->finish("ok");
    }
}

void test_prepare(Tap &tap) {
    fresh_images();
    auto dom = domain();
    auto prep = [&](const std::string &xml, unsigned flags, bool active) -> Result<SnapshotPlan> {
        auto def = TRY(conf::SnapshotDef::parse_string(xml, active && !(flags & VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY)
                                                                ? 0u : unsigned(conf::kSnapshotParseOffline)));
        TRY(conf::snapshot_create_align(*def, dom->clone(), nullptr, flags, active,
                                        active ? conf::SnapshotState::Running : conf::SnapshotState::Shutoff));
        return snapshot_prepare(*def, *dom, active, flags);
    };
    auto p = prep("<domainsnapshot><name>s1</name></domainsnapshot>", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, true);
    tap.ok(p && p->has_external && p->disks.size() == 2 && p->disks[0].overlay_path == g_dir + "/a.s1",
           "prepare: disk-only defaults to external with libvirt's names", p ? "" : p.error().message());
    p = prep("<domainsnapshot><name>s1</name><disks><disk name='vda' snapshot='no'/><disk name='vdb' snapshot='no'/>"
             "</disks></domainsnapshot>",
             VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, true);
    tap.ok(!p && p.error().code == VIR_ERR_CONFIG_UNSUPPORTED &&
               p.error().detail == "nothing selected for snapshot",
           "prepare: every disk excluded -> nothing selected", p ? "" : p.error().message());
    (void)file::write_atomic(g_dir + "/a.s1", "data");
    (void)file::write_atomic(g_dir + "/b.s1", "data");
    p = prep("<domainsnapshot><name>s1</name></domainsnapshot>", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, true);
    tap.ok(!p && p.error().detail == "external snapshot file for disk vda already exists and is not a block device: " +
                                         g_dir + "/a.s1",
           "prepare: existing non-empty overlay refused", p ? "" : p.error().message());
    p = prep("<domainsnapshot><name>s1</name></domainsnapshot>",
             VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT, true);
    tap.ok(!p && p.error().code == VIR_ERR_CONFIG_UNSUPPORTED, "prepare: REUSE_EXT of a file that is not an image",
           p ? "" : p.error().message());
    (void)file::remove(g_dir + "/a.s1");
    (void)file::remove(g_dir + "/b.s1");
    p = prep("<domainsnapshot><name>s1</name></domainsnapshot>",
             VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT, true);
    tap.ok(!p && p.error().code == VIR_ERR_SYSTEM_ERROR &&
               p.error().detail.rfind("missing existing file for disk vda", 0) == 0,
           "prepare: REUSE_EXT of a missing file", p ? "" : p.error().message());
    (void)qemu::qemu_img::create_overlay(g_dir + "/a.s1", g_dir + "/a.qcow2", "qcow2");
    (void)qemu::qemu_img::create_overlay(g_dir + "/b.s1", g_dir + "/a.qcow2", "qcow2");
    p = prep("<domainsnapshot><name>s1</name></domainsnapshot>",
             VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT, true);
    tap.ok(!p && p.error().detail.find("must have '" + g_dir + "/b.qcow2' as backing file") != std::string::npos,
           "prepare: REUSE_EXT with the wrong backing file", p ? "" : p.error().message());
    (void)file::remove(g_dir + "/b.s1");
    (void)qemu::qemu_img::create_overlay(g_dir + "/b.s1", g_dir + "/b.qcow2", "qcow2");
    p = prep("<domainsnapshot><name>s1</name></domainsnapshot>",
             VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT, true);
    tap.ok(p && p->disks[0].reuse && p->disks[1].reuse, "prepare: REUSE_EXT with fitting files",
           p ? "" : p.error().message());
    p = prep("<domainsnapshot><name>s1</name><disks><disk name='vda' snapshot='internal'/>"
             "<disk name='vdb' snapshot='no'/></disks></domainsnapshot>",
             0, false);
    tap.ok(!p && p.error().detail == "disk 'vdb' must use snapshot mode 'internal'",
           "prepare: internal snapshot must cover every disk (uniform alignment)", p ? "" : p.error().message());
    p = prep("<domainsnapshot><name>s1</name><memory snapshot='external' file='" + g_dir +
                 "/m'/><disks><disk name='vda' snapshot='internal'/></disks></domainsnapshot>",
             0, true);
    tap.ok(!p && p.error().code == VIR_ERR_CONFIG_UNSUPPORTED, "prepare: external memory with an internal disk",
           p ? "" : p.error().message());
}

}  // namespace

int main() {
    Tap tap;
    if (!have_qemu_img()) {
        tap.skip("qemusnapshotcreatetest", "qemu-img not installed");
        return tap.finish();
    }
    g_dir = test::temp_dir("snapcreate");
    test_txn(tap);
    test_prepare(tap);
    test_inactive(tap);
    test_external_active(tap);
    test_external_memory(tap);
    test_internal_active(tap);
    test_instant(tap);
    return tap.finish();
}
