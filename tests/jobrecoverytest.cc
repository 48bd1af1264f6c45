// jobrecoverytest - the start-up recovery of snapshot-create journals
// (src/qemu_snapshot/job_recovery.hh): journals written by hand as a job
// killed at each step leaves them, recovered against real qemu-img images,
// a real snapshot metadata directory and, where QEMU is needed, a mock QMP
// server that plays a QEMU with a block graph, a run state, a migration and
// jobs. Each case checks files, QEMU commands, definitions and metadata.

#include "conf/snapshot_def.hh"
#include "conf/snapshot_list.hh"
#include "conf/state_layout.hh"
#include "qemu/monitor.hh"
#include "qemu/qemu_img.hh"
#include "qemu/save_image.hh"
#include "qemu_snapshot/job_recovery.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"
#include "util/file.hh"
#include "util/job_journal.hh"

#include <libvirt/libvirt.h>

#include <fcntl.h>
#include <map>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::qemu_snapshot;
using virtsnap::test::MockQmpServer;
using virtsnap::test::Tap;

namespace {

std::string g_dir;
const char *kUuid = "11111111-2222-3333-4444-555555555555";

bool have_qemu_img() { return std::system("qemu-img --version >/dev/null 2>&1") == 0; }

std::string p(const std::string &name) { return g_dir + "/" + name; }

// A QEMU as far as recovery asks it.
struct FakeQemu {
    std::mutex mu;
    std::map<std::string, std::string> tops;    // device -> top node
    std::map<std::string, std::string> nodes;   // node -> file
    bool running = true;
    std::string migration = "none";
    std::vector<std::string> jobs_concluded;    // ids
    std::vector<std::string> commands;          // "name" or "name arg"
    MockQmpServer server;
    std::unique_ptr<qemu::Monitor> mon;

    FakeQemu() {
        server.set_handler([this](const qemu::QValue &cmd, std::vector<UniqueFd> &) -> std::vector<std::string> {
            std::lock_guard lock(mu);
            const qemu::QValue *exec = cmd.get("execute");
            std::string name = exec && exec->str() ? *exec->str() : "";
            const qemu::QValue *args = cmd.get("arguments");
            auto arg = [&](const char *k) -> std::string {
                const qemu::QValue *v = args ? args->get(k) : nullptr;
                return v && v->str() ? *v->str() : "";
            };
            if (name == "query-block") {
                std::string out = R"({"return": [)";
                bool first = true;
                for (const auto &[dev, top] : tops) {
                    out += std::string(first ? "" : ",") + R"({"device": "", "qdev": ")" + dev +
                           R"(", "removable": false, "locked": false, "inserted": {"node-name": ")" + top +
                           R"(", "file": ")" + nodes[top] + R"(", "drv": "qcow2", "ro": false}})";
                    first = false;
                }
                return {out + "]}"};
            }
            if (name == "query-named-block-nodes") {
                std::string out = R"({"return": [)";
                bool first = true;
                for (const auto &[node, f] : nodes) {
                    out += std::string(first ? "" : ",") + R"({"node-name": ")" + node + R"(", "drv": ")" +
                           (node.ends_with("-format") ? "qcow2" : "file") + R"(", "file": ")" + f +
                           R"(", "ro": false})";
                    first = false;
                }
                return {out + "]}"};
            }
            commands.push_back(name + (arg("node-name").empty() ? "" : " " + arg("node-name")) +
                               (arg("tag").empty() ? "" : " " + arg("tag")));
            if (name == "query-status")
                return {std::string(R"({"return": {"running": )") + (running ? "true" : "false") +
                        R"(, "status": ")" + (running ? "running" : "paused") + R"("}})"};
            if (name == "cont") {
                running = true;
                return {R"({"return": {}})"};
            }
            if (name == "blockdev-del") {
                nodes.erase(arg("node-name"));
                return {R"({"return": {}})"};
            }
            if (name == "query-migrate")
                return {R"({"return": {"status": ")" + migration + R"("}})"};
            if (name == "migrate_cancel") {
                migration = "cancelled";
                return {R"({"return": {}})"};
            }
            if (name == "query-jobs") {
                std::string out = R"({"return": [)";
                for (size_t i = 0; i < jobs_concluded.size(); ++i)
                    out += std::string(i ? "," : "") + R"({"id": ")" + jobs_concluded[i] +
                           R"(", "type": "snapshot-delete", "status": "concluded", "current-progress": 1, "total-progress": 1})";
                return {out + "]}"};
            }
            if (name == "snapshot-delete") {
                jobs_concluded.push_back(arg("job-id"));
                return {R"({"return": {}})"};
            }
            if (name == "job-dismiss") {
                std::erase(jobs_concluded, arg("id"));
                return {R"({"return": {}})"};
            }
            return {R"({"return": {}})"};
        });
        server.start();
        qemu::Monitor::Options o;
        o.vm_name = "vm1";
        o.timeout = std::chrono::milliseconds(5000);
        auto m = qemu::Monitor::connect(server.socket_path(), o);
        if (m) mon = std::move(m).value();
    }
    ~FakeQemu() {
        mon.reset();
        (void)server.finish();
    }
    bool saw(const std::string &c) {
        std::lock_guard lock(mu);
        return std::find(commands.begin(), commands.end(), c) != commands.end();
    }
    std::vector<std::string> sent() {
        std::lock_guard lock(mu);
        return commands;
    }
};

std::unique_ptr<conf::DomainDef> domain(const std::string &a, const std::string &b) {
    std::string xml = std::string("<domain type='qemu'><name>vm1</name><uuid>") + kUuid +
                      "</uuid><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
                      "<devices>"
                      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + a +
                      "'/><target dev='vda' bus='virtio'/></disk>"
                      "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='" + b +
                      "'/><target dev='vdb' bus='virtio'/></disk>"
                      "</devices></domain>";
    auto d = conf::DomainDef::parse_string(xml, conf::kDomainParseInactive);
    if (!d) std::abort();
    return std::move(d).value();
}

struct FakeTarget : RecoveryTarget {
    qemu::Monitor *mon = nullptr;
    std::shared_ptr<const conf::DomainDef> live, pers;
    std::vector<qemu::DiskNodeNames> graph;
    unsigned next = 3;
    int halts = 0, thaws = 0, saves = 0;
    std::optional<StateLayout> layout;
    conf::SnapshotList list;

    FakeTarget(qemu::Monitor *m, bool running) : mon(m) {
        pers = domain(p("a.qcow2"), p("b.qcow2"));
        if (running) {
            live = pers;
            graph = {{"vda", {{1, "libvirt-1-storage", "libvirt-1-format"}}},
                     {"vdb", {{2, "libvirt-2-storage", "libvirt-2-format"}}}};
        }
        (void)std::system(("rm -rf " + g_dir + "/state").c_str());
        layout.emplace(*StateLayout::embedded(g_dir + "/state"));
        (void)list.load(*layout, "vm1", *Uuid::parse(kUuid));
    }
    qemu::Monitor *monitor() override { return mon; }
    std::shared_ptr<const conf::DomainDef> live_def() override { return live; }
    std::vector<qemu::DiskNodeNames> block_graph() override { return graph; }
    unsigned next_node_index() override { return next; }
    Status set_live(std::shared_ptr<const conf::DomainDef> d, std::vector<qemu::DiskNodeNames> g,
                    unsigned n) override {
        live = std::move(d);
        graph = std::move(g);
        next = n;
        return ok();
    }
    std::shared_ptr<const conf::DomainDef> persistent_def() override { return pers; }
    Status save_persistent(std::shared_ptr<const conf::DomainDef> d) override {
        pers = std::move(d);
        ++saves;
        return ok();
    }
    conf::SnapshotList *snapshots() override { return &list; }
    Status resume() override { return mon ? mon->cont() : ok(); }
    Status halt() override {
        ++halts;
        return ok();
    }
    Status thaw() override {
        ++thaws;
        return ok();
    }
    std::string src(bool live_def, const char *dev) {
        const auto &d = live_def ? live : pers;
        const conf::DomainDisk *disk = d ? d->disk_by_target(dev) : nullptr;
        return disk ? disk->src.path : "";
    }
};

void fresh_images() {
    for (const char *n : {"a.qcow2", "b.qcow2", "a.s1", "b.s1", "mem.s1"}) (void)file::remove(p(n));
    (void)qemu::qemu_img::create(p("a.qcow2"), "qcow2", 1 << 20);
    (void)qemu::qemu_img::create(p("b.qcow2"), "qcow2", 1 << 20);
}

void make_overlays() {
    (void)qemu::qemu_img::create_overlay(p("a.s1"), p("a.qcow2"), "qcow2");
    (void)qemu::qemu_img::create_overlay(p("b.s1"), p("b.qcow2"), "qcow2");
}

std::string metadata(bool external, const std::string &state = "disk-snapshot") {
    std::string xml = "<domainsnapshot><name>s1</name><state>" + state +
                      "</state><creationTime>1700000000</creationTime>";
    if (external)
        xml += "<memory snapshot='no'/><disks>"
               "<disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='" + p("a.s1") +
               "'/></disk>"
               "<disk name='vdb' snapshot='external' type='file'><driver type='qcow2'/><source file='" + p("b.s1") +
               "'/></disk></disks>";
    xml += "</domainsnapshot>";
    auto def = conf::SnapshotDef::parse_string(xml, conf::kSnapshotParseRedefine);
    if (!def) {
        std::fprintf(stderr, "snapshot parse: %s\n", def.error().message().c_str());
        std::abort();
    }
    return conf::snapshot_metadata_file_text(**def, *Uuid::parse(kUuid), true);
}

// A journal as a job killed after its last record leaves it.
struct Rec {
    enum Kind { Intent, Done, Commit } kind;
    std::string step;
    JournalFields fields;
};

JournalState write_journal(const std::string &mode, unsigned flags, const std::vector<Rec> &recs) {
    std::string dir = g_dir + "/journal";
    (void)std::system(("rm -rf " + dir).c_str());
    JournalHeader h;
    h.operation = "snapshot-create";
    h.domain_uuid = kUuid;
    h.fields.set("domain", "vm1").set("snapshot", "s1").set("flags", flags).set("mode", mode);
    {
        auto j = JobJournal::create(dir, h);
        if (!j) std::abort();
        for (const auto &r : recs) {
            Status st = r.kind == Rec::Intent ? j->intent(r.step, r.fields)
                        : r.kind == Rec::Done ? j->done(r.step, r.fields)
                                              : j->commit(r.fields);
            if (!st) {
                std::fprintf(stderr, "journal: %s\n", st.error().message().c_str());
                std::abort();
            }
        }
    }  // destroyed without finish(): left for recovery
    auto scan = JobJournal::scan(dir);
    if (!scan || scan->journals.size() != 1) std::abort();
    return scan->journals.front();
}

// Recovers through the registry, as the daemon does; true when the journal is gone.
bool recover(Tap &tap, const std::string &name, FakeTarget &t, const JournalState &st, bool twice = true) {
    JournalRecovery rec;
    RecoveryOptions o;
    o.migration_wait = std::chrono::milliseconds(2000);
    o.job_wait = std::chrono::milliseconds(2000);
    add_recovery_handlers(rec, [&t](const JournalState &) -> RecoveryTarget & { return t; }, o);
    Status r = rec.recover(st);
    tap.ok(r.has_value(), name + ": recovery succeeds", r ? "" : r.error().message());
    if (twice) {  // a crash during recovery: the same journal once more
        JournalHeader h{"snapshot-create", kUuid, "", {}};
        (void)file::make_dirs(g_dir + "/scratch", 0700);
        auto scratch = JobJournal::create(g_dir + "/scratch", h);
        if (!scratch) std::abort();
        Status again = recover_snapshot_create(t, *scratch, st, o);
        (void)scratch->finish("ok");
        tap.ok(again.has_value(), name + ": recovery can run again", again ? "" : again.error().message());
    }
    return !file::exists(st.path);
}

JournalFields overlay_fields(const char *disk, const std::string &path) {
    return {{"disk", disk}, {"path", path}, {"existed", int64_t(0)}};
}

std::vector<Rec> prepared_overlays() {
    return {{Rec::Intent, "create-overlay", overlay_fields("vda", p("a.s1"))},
            {Rec::Done, "create-overlay", {}},
            {Rec::Intent, "blockdev-add", {{"disk", "vda"}, {"node", "libvirt-3-storage"}}},
            {Rec::Done, "blockdev-add", {}},
            {Rec::Intent, "blockdev-add", {{"disk", "vda"}, {"node", "libvirt-3-format"}}},
            {Rec::Done, "blockdev-add", {}},
            {Rec::Intent, "create-overlay", overlay_fields("vdb", p("b.s1"))},
            {Rec::Done, "create-overlay", {}},
            {Rec::Intent, "blockdev-add", {{"disk", "vdb"}, {"node", "libvirt-4-storage"}}},
            {Rec::Done, "blockdev-add", {}},
            {Rec::Intent, "blockdev-add", {{"disk", "vdb"}, {"node", "libvirt-4-format"}}},
            {Rec::Done, "blockdev-add", {}}};
}

Rec transaction_intent(bool with_metadata) {
    JournalFields f{{"node0", "libvirt-1-format"}, {"overlay0", "libvirt-3-format"},
                    {"node1", "libvirt-2-format"}, {"overlay1", "libvirt-4-format"},
                    {"was_running", int64_t(1)}};
    if (with_metadata) f.set("metadata", metadata(true));
    return {Rec::Intent, "transaction", f};
}

void qemu_with_nodes(FakeQemu &q, bool switched) {
    q.nodes = {{"libvirt-1-format", p("a.qcow2")}, {"libvirt-1-storage", p("a.qcow2")},
               {"libvirt-2-format", p("b.qcow2")}, {"libvirt-2-storage", p("b.qcow2")},
               {"libvirt-3-format", p("a.s1")},    {"libvirt-3-storage", p("a.s1")},
               {"libvirt-4-format", p("b.s1")},    {"libvirt-4-storage", p("b.s1")}};
    q.tops = {{"vda", switched ? "libvirt-3-format" : "libvirt-1-format"},
              {"vdb", switched ? "libvirt-4-format" : "libvirt-2-format"}};
}

// ---------------------------------------------------------------- shut off

void test_inactive(Tap &tap) {
    {
        fresh_images();
        (void)qemu::qemu_img::snapshot_create(p("a.qcow2"), "s1");
        FakeTarget t(nullptr, false);
        auto st = write_journal("internal-inactive", 0,
                                {{Rec::Intent, "qemu-img-snapshot", {{"disk", "vda"}, {"path", p("a.qcow2")}, {"tag", "s1"}}},
                                 {Rec::Done, "qemu-img-snapshot", {}},
                                 {Rec::Intent, "qemu-img-snapshot", {{"disk", "vdb"}, {"path", p("b.qcow2")}, {"tag", "s1"}}}});
        tap.ok(recover(tap, "internal, shut off, killed at disk 2", t, st), "internal, shut off: journal removed");
        auto a = qemu::qemu_img::snapshot_list(p("a.qcow2"));
        tap.ok(a && a->empty(), "internal, shut off: the tag of disk 1 is deleted");
        tap.eq(t.list.count(), size_t(0), "internal, shut off: no metadata");
    }
    {
        fresh_images();
        (void)qemu::qemu_img::snapshot_create(p("a.qcow2"), "s1");
        (void)qemu::qemu_img::snapshot_create(p("b.qcow2"), "s1");
        FakeTarget t(nullptr, false);
        auto st = write_journal("internal-inactive", 0,
                                {{Rec::Intent, "qemu-img-snapshot", {{"disk", "vda"}, {"path", p("a.qcow2")}, {"tag", "s1"}}},
                                 {Rec::Done, "qemu-img-snapshot", {}},
                                 {Rec::Commit, "", {{"metadata", metadata(false, "shutoff")}}}});
        recover(tap, "internal, shut off, committed", t, st);
        auto a = qemu::qemu_img::snapshot_list(p("a.qcow2"));
        tap.ok(a && a->size() == 1, "internal, shut off, committed: the tags stay");
        tap.ok(t.list.contains("s1") && t.list.current_name() == std::optional<std::string>("s1"),
               "internal, shut off, committed: metadata written, current");
        tap.ok(file::exists(g_dir + "/state/lib/qemu/snapshot/vm1/s1.xml"), "internal, shut off, committed: file");
    }
    {
        fresh_images();
        make_overlays();
        (void)file::write_atomic(p("b.s1"), "", 0644);  // an empty file the user prepared
        FakeTarget t(nullptr, false);
        auto st = write_journal("external-inactive", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY,
                                {{Rec::Intent, "create-overlay", overlay_fields("vda", p("a.s1"))},
                                 {Rec::Done, "create-overlay", {}},
                                 {Rec::Intent, "create-overlay", {{"disk", "vdb"}, {"path", p("b.s1")}, {"existed", int64_t(1)}}}});
        recover(tap, "external, shut off, killed at disk 2", t, st);
        tap.ok(!file::exists(p("a.s1")), "external, shut off: overlay we created is unlinked");
        struct stat sb {};
        tap.ok(::stat(p("b.s1").c_str(), &sb) == 0 && sb.st_size == 0, "external, shut off: existing file emptied");
        tap.eq(t.saves, 0, "external, shut off: definition untouched");
    }
    {
        fresh_images();
        make_overlays();
        FakeTarget t(nullptr, false);
        auto st = write_journal("external-inactive", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY,
                                {{Rec::Intent, "create-overlay", overlay_fields("vda", p("a.s1"))},
                                 {Rec::Done, "create-overlay", {}},
                                 {Rec::Intent, "create-overlay", overlay_fields("vdb", p("b.s1"))},
                                 {Rec::Done, "create-overlay", {}},
                                 {Rec::Commit, "", {{"metadata", metadata(true)}}}});
        recover(tap, "external, shut off, committed before the definition was saved", t, st);
        tap.eq(t.src(false, "vda") + " " + t.src(false, "vdb"), p("a.s1") + " " + p("b.s1"),
               "external, shut off, committed: the definition follows the overlays");
        tap.eq(t.saves, 1, "external, shut off, committed: saved once (not again on the second run)");
        tap.ok(t.list.contains("s1"), "external, shut off, committed: metadata written");
        tap.ok(file::exists(p("a.s1")) && file::exists(p("b.s1")), "external, shut off, committed: overlays kept");
    }
}

// ---------------------------------------------------------------- running, external

void test_external_active(Tap &tap) {
    // killed after the nodes were added, before the transaction
    {
        fresh_images();
        make_overlays();
        FakeQemu q;
        qemu_with_nodes(q, false);
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("external-active", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, prepared_overlays());
        recover(tap, "disk-only, killed before the transaction", t, st);
        auto sent = q.sent();
        std::vector<std::string> dels;
        for (const auto &c : sent)
            if (c.starts_with("blockdev-del")) dels.push_back(c);
        tap.ok(dels == std::vector<std::string>{"blockdev-del libvirt-4-format", "blockdev-del libvirt-4-storage",
                                                "blockdev-del libvirt-3-format", "blockdev-del libvirt-3-storage"},
               "disk-only, not switched: blockdev-del of every added node, format first", [&] {
                   std::string s;
                   for (const auto &c : sent) s += c + "\n";
                   return s;
               }());
        tap.ok(!file::exists(p("a.s1")) && !file::exists(p("b.s1")), "disk-only, not switched: overlays unlinked");
        tap.ok(!q.saw("cont"), "disk-only, not switched: a guest the job never paused is not touched");
        tap.eq(t.src(true, "vda"), p("a.qcow2"), "disk-only, not switched: live definition unchanged");
        tap.eq(t.list.count(), size_t(0), "disk-only, not switched: no metadata");
    }
    // killed at the transaction intent; QEMU did not switch
    {
        fresh_images();
        make_overlays();
        FakeQemu q;
        qemu_with_nodes(q, false);
        FakeTarget t(q.mon.get(), true);
        auto recs = prepared_overlays();
        recs.push_back(transaction_intent(true));
        auto st = write_journal("external-active", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, recs);
        recover(tap, "disk-only, transaction not applied", t, st);
        tap.ok(!file::exists(p("a.s1")) && !file::exists(p("b.s1")), "transaction not applied: rolled back");
        tap.eq(t.list.count(), size_t(0), "transaction not applied: no metadata");
    }
    // the transaction happened, the commit record was not written
    {
        fresh_images();
        make_overlays();
        FakeQemu q;
        qemu_with_nodes(q, true);
        FakeTarget t(q.mon.get(), true);
        auto recs = prepared_overlays();
        recs.push_back(transaction_intent(true));
        auto st = write_journal("external-active", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, recs);
        recover(tap, "disk-only, transaction applied, no commit record", t, st);
        tap.ok(file::exists(p("a.s1")) && file::exists(p("b.s1")), "transaction applied: overlays kept");
        tap.ok(!q.saw("blockdev-del libvirt-3-format"), "transaction applied: no node removed");
        tap.eq(t.src(true, "vda") + " " + t.src(true, "vdb"), p("a.s1") + " " + p("b.s1"),
               "transaction applied: live definition follows QEMU");
        const conf::DomainDisk *d = t.live->disk_by_target("vda");
        tap.ok(d && d->src.backing && d->src.backing->path == p("a.qcow2") && d->src.index == std::optional<int>(3),
               "transaction applied: old image is the backing store, index from the node name");
        tap.ok(t.graph.size() == 2 && t.graph[0].top_node() == "libvirt-3-format" && t.graph[0].layers.size() == 2 &&
                   t.graph[1].top_node() == "libvirt-4-format",
               "transaction applied: block graph follows QEMU");
        tap.eq(t.next, 5u, "transaction applied: next node index past the overlays");
        tap.eq(t.src(false, "vda"), p("a.s1"), "transaction applied: persistent definition follows");
        tap.ok(t.list.contains("s1"), "transaction applied: the snapshot is recorded (metadata of the intent)");
    }
    // committed: roll forward, the driver had updated nothing
    {
        fresh_images();
        make_overlays();
        FakeQemu q;
        qemu_with_nodes(q, true);
        q.running = false;  // HALT of a committed snapshot
        FakeTarget t(q.mon.get(), true);
        auto recs = prepared_overlays();
        recs.push_back(transaction_intent(false));
        recs.push_back({Rec::Commit, "", {{"metadata", metadata(true)}}});
        auto st = write_journal("external-active",
                                VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_HALT, recs);
        recover(tap, "disk-only HALT, committed", t, st, false);
        tap.ok(t.list.contains("s1") && t.src(false, "vdb") == p("b.s1"), "committed: metadata and definitions");
        tap.eq(t.halts, 1, "committed HALT: QEMU stopped");
        tap.ok(!q.saw("cont"), "committed HALT: not resumed");
    }
    // QEMU died: the overlays stay (maybe written), no snapshot record
    {
        fresh_images();
        make_overlays();
        FakeTarget t(nullptr, false);
        auto recs = prepared_overlays();
        recs.push_back(transaction_intent(true));
        auto st = write_journal("external-active", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, recs);
        recover(tap, "disk-only, QEMU gone at the transaction", t, st);
        tap.ok(file::exists(p("a.s1")) && t.src(false, "vda") == p("a.s1") && t.src(false, "vdb") == p("b.s1"),
               "QEMU gone: overlays kept as the active layer of the persistent definition");
        tap.eq(t.list.count(), size_t(0), "QEMU gone: no snapshot record");
    }
    // QEMU died before the nodes were used: nothing switched, files go (QEMU gone, no transaction)
    {
        fresh_images();
        make_overlays();
        FakeTarget t(nullptr, false);
        auto st = write_journal("external-active", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, prepared_overlays());
        recover(tap, "disk-only, QEMU gone before the transaction", t, st);
        tap.ok(!file::exists(p("a.s1")) && !file::exists(p("b.s1")) && t.src(false, "vda") == p("a.qcow2"),
               "QEMU gone before the transaction: overlays removed, definition unchanged");
    }
}

// ---------------------------------------------------------------- memory

void write_partial_image(const std::string &path, size_t stream_bytes) {
    qemu::SaveImageHeader h;
    h.data_len = 100;
    h.complete = false;
    auto bytes = h.encode();
    std::string data(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    data += std::string(100 + stream_bytes, 'x');
    (void)file::write_atomic(path, data, 0600);
}

std::string magic(const std::string &path) {
    auto text = file::read(path, 1 << 20);
    return text ? text->substr(0, 16) : "";
}

void test_memory(Tap &tap) {
    // non-live: killed while the memory was written (the guest paused by the job)
    {
        fresh_images();
        write_partial_image(p("mem.s1"), 10);
        FakeQemu q;
        qemu_with_nodes(q, false);
        q.running = false;
        q.migration = "active";
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("external-memory-active", 0,
                                {{Rec::Intent, "pause", {}},
                                 {Rec::Done, "pause", {}},
                                 {Rec::Intent, "memory", {{"path", p("mem.s1")}, {"existed", int64_t(0)}, {"was_running", int64_t(1)}}}});
        recover(tap, "memory, killed while writing", t, st);
        tap.ok(q.saw("migrate_cancel"), "memory, killed while writing: migration cancelled");
        tap.ok(!file::exists(p("mem.s1")), "memory, killed while writing: partial memory file removed");
        tap.ok(q.saw("cont") && q.running, "memory, killed while writing: the guest the job paused runs again");
    }
    // non-live: killed at the pause intent, the guest paused already
    {
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("external-memory-active", 0, {{Rec::Intent, "pause", {}}});
        recover(tap, "memory, killed at pause", t, st);
        tap.ok(q.saw("cont"), "memory, killed at pause: cont");
    }
    // a domain the user had paused: no pause intent, stays paused
    {
        fresh_images();
        write_partial_image(p("mem.s1"), 10);
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("external-memory-active", 0,
                                {{Rec::Intent, "memory", {{"path", p("mem.s1")}, {"existed", int64_t(0)}, {"was_running", int64_t(0)}}}});
        recover(tap, "memory of a paused domain", t, st);
        tap.ok(!q.saw("cont"), "memory of a paused domain: stays paused");
        tap.ok(!file::exists(p("mem.s1")), "memory of a paused domain: partial file removed");
    }
    // instant: switched, QEMU completed the memory while the daemon was away
    for (bool completed : {true, false}) {
        std::string label = completed ? "instant, memory completed meanwhile" : "instant, memory migration failed";
        fresh_images();
        make_overlays();
        write_partial_image(p("mem.s1"), completed ? 4096 : 10);
        FakeQemu q;
        qemu_with_nodes(q, true);
        q.migration = completed ? "completed" : "failed";
        FakeTarget t(q.mon.get(), true);
        auto recs = prepared_overlays();
        recs.push_back({Rec::Intent, "pause", {}});
        recs.push_back({Rec::Done, "pause", {}});
        recs.push_back(transaction_intent(true));
        recs.push_back({Rec::Intent, "memory", {{"path", p("mem.s1")}, {"existed", int64_t(0)}, {"was_running", int64_t(1)}}});
        auto st = write_journal("external-memory-active-instant", VIR_DOMAIN_SNAPSHOT_CREATE_LIVE, recs);
        recover(tap, label, t, st);
        tap.ok(file::exists(p("a.s1")) && t.src(true, "vda") == p("a.s1") && t.src(false, "vda") == p("a.s1"),
               label + ": the overlays stay the active layer");
        if (completed) {
            tap.eq(magic(p("mem.s1")), std::string("LibvirtQemudSave"), label + ": memory image marked complete");
            tap.ok(t.list.contains("s1"), label + ": snapshot recorded");
        } else {
            tap.ok(!file::exists(p("mem.s1")), label + ": partial memory file removed");
            tap.eq(t.list.count(), size_t(0), label + ": only the snapshot record dropped");
        }
    }
}

// ---------------------------------------------------------------- internal, running

void test_internal_active(Tap &tap) {
    JournalFields save{{"tag", "s1"}, {"vmstate", "libvirt-1-format"}, {"device0", "libvirt-1-format"},
                       {"device1", "libvirt-2-format"}};
    {
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("internal-active", 0,
                                {{Rec::Intent, "pause", {}}, {Rec::Done, "pause", {}}, {Rec::Intent, "snapshot-save", save}});
        recover(tap, "internal running, killed at snapshot-save", t, st, false);
        tap.ok(q.saw("snapshot-delete s1") && q.saw("job-dismiss"), "internal running: snapshot-delete job for the tag");
        tap.ok(q.saw("cont") && q.running, "internal running: resumed");
        tap.eq(t.list.count(), size_t(0), "internal running: no metadata");
    }
    {
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        auto st = write_journal("internal-active", 0,
                                {{Rec::Intent, "snapshot-save", save}, {Rec::Commit, "", {{"metadata", metadata(false, "paused")}}}});
        recover(tap, "internal of a paused domain, committed", t, st);
        tap.ok(!q.saw("cont") && !q.saw("snapshot-delete s1"), "internal paused, committed: stays paused, tag kept");
        tap.ok(t.list.contains("s1"), "internal paused, committed: metadata written");
    }
    {
        fresh_images();
        (void)qemu::qemu_img::snapshot_create(p("a.qcow2"), "s1");
        FakeTarget t(nullptr, false);
        auto st = write_journal("internal-active", 0, {{Rec::Intent, "pause", {}}, {Rec::Intent, "snapshot-save", save}});
        recover(tap, "internal, QEMU gone during snapshot-save", t, st);
        auto a = qemu::qemu_img::snapshot_list(p("a.qcow2"));
        tap.ok(a && a->empty(), "internal, QEMU gone: tag deleted with qemu-img");
    }
}

void test_registry(Tap &tap) {
    JournalRecovery rec;
    FakeTarget t(nullptr, false);
    add_recovery_handlers(rec, [&t](const JournalState &) -> RecoveryTarget & { return t; });
    tap.ok(rec.handles("snapshot-create"), "registry: snapshot-create handled");
    fresh_images();
    make_overlays();
    auto st = write_journal("external-inactive", VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY,
                            {{Rec::Intent, "create-overlay", overlay_fields("vda", p("a.s1"))}});
    auto report = rec.run(g_dir + "/journal");
    tap.ok(report && report->recovered == 1 && report->failed.empty(), "registry: run() recovers the directory");
    tap.ok(!file::exists(st.path) && !file::exists(p("a.s1")), "registry: journal and overlay gone");
}

}  // namespace

int main() {
    Tap tap;
    if (!have_qemu_img()) {
        tap.skip("jobrecoverytest", "qemu-img not installed");
        return tap.finish();
    }
    g_dir = test::temp_dir("jobrecovery");
    test_inactive(tap);
    test_external_active(tap);
    test_memory(tap);
    test_internal_active(tap);
    test_registry(tap);
    return tap.finish();
}
