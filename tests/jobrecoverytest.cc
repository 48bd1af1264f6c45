// jobrecoverytest - the start-up recovery of snapshot-create journals
// (src/qemu_snapshot/job_recovery.hh): journals written by hand as a job
// killed at each step leaves them, recovered against real qemu-img images,
// a real snapshot metadata directory and, where QEMU is needed, a mock QMP
// server that plays a QEMU with a block graph, a run state, a migration and
// jobs. Each case checks files, QEMU commands, definitions and metadata.
// Revert and delete journals are also recovered a second time after a
// recovery killed before its end record (what it appended stays).

#include "conf/snapshot_def.hh"
#include "conf/snapshot_list.hh"
#include "conf/state_layout.hh"
#include "qemu/monitor.hh"
#include "qemu/qemu_img.hh"
#include "qemu/save_image.hh"
#include "qemu_snapshot/job_recovery.hh"
#include "qemu_snapshot/snapshot_delete.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "testutils/mock_qmp_server.hh"
#include "testutils/tap.hh"
#include "util/file.hh"
#include "util/job_journal.hh"
#include "util/process.hh"

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
    struct Job {
        std::string type, status;
        std::optional<std::string> error;
        std::string device, base;  // block-commit: the pivot moves `device` to `base`
    };
    std::map<std::string, Job> jobs;            // id -> job, as query-jobs lists them
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
                bool first = true;
                for (const auto &[id, j] : jobs) {
                    out += std::string(first ? "" : ",") + R"({"id": ")" + id + R"(", "type": ")" + j.type +
                           R"(", "status": ")" + j.status + R"(", "current-progress": 1, "total-progress": 1)" +
                           (j.error ? R"(, "error": ")" + *j.error + "\"" : "") + "}";
                    first = false;
                }
                return {out + "]}"};
            }
            if (name == "snapshot-delete") {
                jobs[arg("job-id")] = {"snapshot-delete", "concluded", std::nullopt, "", ""};
                return {R"({"return": {}})"};
            }
            if (name == "job-dismiss") {
                jobs.erase(arg("id"));
                return {R"({"return": {}})"};
            }
            if (name == "stop") {
                running = false;
                return {R"({"return": {}})"};
            }
            if (name == "block-commit") {
                // The device's top is the active layer: an active commit waits for job-complete.
                bool active = arg("top-node").empty();
                std::string id = arg("job-id");
                std::string dev;
                for (const auto &[d, top] : tops)
                    if (top == arg("device")) dev = d;
                jobs[id] = {"commit", active ? "ready" : "concluded", std::nullopt, dev, arg("base-node")};
                std::vector<std::string> out = {R"({"return": {}})", job_event(id, "created"),
                                                job_event(id, "running")};
                out.push_back(job_event(id, active ? "ready" : "concluded"));
                return out;
            }
            if (name == "job-complete") {
                auto it = jobs.find(arg("id"));
                if (it == jobs.end() || it->second.status != "ready")
                    return {R"({"error": {"class": "GenericError", "desc": "job not ready"}})"};
                it->second.status = "concluded";
                tops[it->second.device] = it->second.base;
                return {R"({"return": {}})", job_event(arg("id"), "concluded")};
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
    static std::string job_event(const std::string &id, const std::string &status) {
        return R"({"timestamp": {"seconds": 1700000042, "microseconds": 1}, "event": "JOB_STATUS_CHANGE", "data": {"status": ")" +
               status + R"(", "id": ")" + id + R"("}})";
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
    int halts = 0, thaws = 0, saves = 0, discards = 0, failed_reverts = 0, resumes_from_snapshot = 0;
    struct Start {
        std::string first_disk;
        bool paused = false;
        std::string memory;
    };
    std::vector<Start> starts;
    qemu::Monitor *attach_on_start = nullptr;  // the QEMU a start leaves attached
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
    Status resume_from_snapshot() override {
        ++resumes_from_snapshot;
        return resume();
    }
    Status halt() override {
        ++halts;
        mon = nullptr;  // QEMU is gone
        live.reset();
        graph.clear();
        return ok();
    }
    Status start(const conf::DomainDef &def, bool paused, const std::string &memory_file) override {
        starts.push_back({def.disks.empty() ? "" : def.disks[0].src.path, paused, memory_file});
        mon = attach_on_start;
        if (mon) live = std::shared_ptr<const conf::DomainDef>(def.clone());
        return ok();
    }
    Status discard_unattached() override {
        ++discards;
        return ok();
    }
    void note_failed_revert() override { ++failed_reverts; }
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
    for (const char *n : {"a.qcow2", "b.qcow2", "a.s1", "b.s1", "mem.s1", "a.s1-revert1"}) (void)file::remove(p(n));
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

JournalState write_op_journal(const std::string &op, const JournalFields &fields, const std::vector<Rec> &recs) {
    std::string dir = g_dir + "/journal";
    (void)std::system(("rm -rf " + dir).c_str());
    JournalHeader h;
    h.operation = op;
    h.domain_uuid = kUuid;
    h.fields = fields;
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

JournalState write_journal(const std::string &mode, unsigned flags, const std::vector<Rec> &recs) {
    JournalFields f;
    f.set("domain", "vm1").set("snapshot", "s1").set("flags", flags).set("mode", mode);
    return write_op_journal("snapshot-create", f, recs);
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

// ---------------------------------------------------------------- revert and delete

bool qemu_io(const std::string &path, const std::string &cmd) {
    auto r = process::run_capture({{"qemu-io", "-f", "qcow2", "-c", cmd, path}});
    return r && r->status.success() && r->out.find("Pattern verification failed") == std::string::npos;
}

bool has_tag(const std::string &path, const std::string &tag) {
    auto info = qemu::qemu_img::info(path, "", true);
    return info && std::any_of(info->snapshots.begin(), info->snapshots.end(),
                               [&](const auto &s) { return s.name == tag; });
}

std::string domain_xml(const std::string &a, const std::string &b) {
    return domain(a, b)->format_string(conf::kDomainFormatInactive | conf::kDomainFormatSecure);
}

// Snapshot s1 with its <domain> on a.qcow2/b.qcow2 (the revert's target).
void add_snapshot(FakeTarget &t, const std::string &state, bool external, const std::string &memory = "") {
    std::string xml = "<domainsnapshot><name>s1</name><state>" + state + "</state><creationTime>1700000000</creationTime>";
    xml += memory.empty() ? (state == "shutoff" || external ? "<memory snapshot='no'/>" : "<memory snapshot='internal'/>")
                          : "<memory snapshot='external' file='" + memory + "'/>";
    std::string loc = external ? "external" : "internal";
    xml += "<disks><disk name='vda' snapshot='" + loc + "'" +
           (external ? " type='file'><driver type='qcow2'/><source file='" + p("a.s1") + "'/></disk>" : "/>") +
           "<disk name='vdb' snapshot='no'/></disks>";
    xml += domain_xml(p("a.qcow2"), p("b.qcow2")) + "</domainsnapshot>";
    auto def = conf::SnapshotDef::parse_string(xml, conf::kSnapshotParseRedefine);
    if (!def) {
        std::fprintf(stderr, "snapshot parse: %s\n", def.error().message().c_str());
        std::abort();
    }
    if (!t.list.add_created(std::move(*def), false)) std::abort();
}

JournalFields revert_header(const std::string &mode, bool was_active, bool paused_after, bool start_after) {
    JournalFields f;
    f.set("domain", "vm1").set("snapshot", "s1").set("flags", 0).set("mode", mode);
    f.set("was_active", int64_t(was_active)).set("paused_after", int64_t(paused_after));
    f.set("start_after", int64_t(start_after));
    return f;
}

JournalFields delete_header(const std::string &mode) {
    JournalFields f;
    f.set("domain", "vm1").set("snapshot", "s1").set("flags", 0).set("mode", mode);
    return f;
}

using Handler = Status (*)(RecoveryTarget &, JobJournal &, const JournalState &, const RecoveryOptions &);

// Recovery killed before its end record (the file keeps what it appended),
// then the next start recovers the file again. Returns the journal as the
// second start read it; `gone` says whether the file is removed at the end.
JournalState recover_twice(Tap &tap, const std::string &name, FakeTarget &t, const JournalState &st, Handler handler,
                           bool &gone) {
    RecoveryOptions o;
    o.migration_wait = std::chrono::milliseconds(2000);
    o.job_wait = std::chrono::milliseconds(2000);
    {
        auto j = JobJournal::resume(st);
        if (!j) std::abort();
        Status first = handler(t, *j, st, o);
        tap.ok(first.has_value(), name + ": recovery succeeds", first ? "" : first.error().message());
    }
    auto again = JobJournal::read(st.path);
    if (!again) std::abort();
    JournalRecovery rec;
    add_recovery_handlers(rec, [&t](const JournalState &) -> RecoveryTarget & { return t; }, o);
    Status r = rec.recover(*again);
    tap.ok(r.has_value(), name + ": recovery killed and run again succeeds", r ? "" : r.error().message());
    gone = !file::exists(st.path);
    return *again;
}

JournalFields load_fields() {
    return {{"tag", "s1"}, {"vmstate", "libvirt-1-format"}, {"device0", "libvirt-1-format"}};
}

void test_revert_internal_online(Tap &tap) {
    // Killed once the load was asked for; QEMU's job then: concluded, failed
    // while loading, refused in its checks, never created.
    struct Case {
        const char *label;
        bool job;
        std::optional<std::string> error;
    };
    for (const Case &c : {Case{"revert internal, load succeeded meanwhile", true, std::nullopt},
                          Case{"revert internal, load failed while loading", true, "Error -22 while loading VM state"},
                          Case{"revert internal, load refused", true,
                               "Snapshot 's1' does not exist in one or more devices"},
                          Case{"revert internal, no job", false, std::nullopt}}) {
        std::string label = c.label;
        fresh_images();
        FakeQemu q;
        q.running = false;
        if (c.job) q.jobs["snapshot-load"] = {"snapshot-load", "concluded", c.error, "", ""};
        FakeTarget t(q.mon.get(), true);
        add_snapshot(t, "running", false);
        auto st = write_op_journal("snapshot-revert", revert_header("internal-online", true, false, false),
                                   {{Rec::Intent, "pause", {}}, {Rec::Done, "pause", {}},
                                    {Rec::Intent, "snapshot-load", load_fields()}});
        bool gone = false;
        auto mid = recover_twice(tap, label, t, st, recover_snapshot_revert, gone);
        tap.ok(gone, label + ": journal removed");
        bool succeeded = c.job && !c.error;
        bool late = c.error && !snapshot_load_failed_before_loading(*c.error);
        if (succeeded) {
            tap.ok(mid.committed, label + ": commit recorded before the job was dismissed");
            tap.ok(q.saw("job-dismiss") && q.running && t.resumes_from_snapshot >= 1,
                   label + ": job dismissed, guest resumed from snapshot");
        } else if (c.error) {
            const JournalStep *load = mid.find("snapshot-load");
            tap.ok(!mid.committed && load && load->done &&
                       load->result.num("loaded") == std::optional<int64_t>(late ? 1 : 0),
                   label + ": the failure is recorded");
        }
        if (late) tap.ok(!q.saw("cont") && t.failed_reverts >= 1, label + ": guest stays paused, event sent");
        else if (!succeeded)
            tap.ok(q.saw("cont") && q.running && t.failed_reverts == 0 && t.resumes_from_snapshot == 0,
                   label + ": nothing was loaded: the guest the revert paused runs on");
        tap.ok(t.list.current_name() == (succeeded ? std::optional<std::string>("s1") : std::nullopt),
               label + ": " + (succeeded ? "current" : "not made current"));
    }
    // committed, to stay paused
    {
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        add_snapshot(t, "paused", false);
        auto st = write_op_journal("snapshot-revert", revert_header("internal-online", true, true, false),
                                   {{Rec::Intent, "snapshot-load", load_fields()}, {Rec::Commit, "", {{"tag", "s1"}}}});
        bool gone = false;
        recover_twice(tap, "revert internal, committed, paused", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && !q.saw("cont") && t.list.current_name() == std::optional<std::string>("s1"),
               "revert internal, committed, paused: stays paused, current");
    }
    // a shut-off domain: QEMU started for the revert is stopped again
    for (bool attached : {true, false}) {
        std::string label = attached ? "revert internal of a shut-off domain, QEMU started"
                                     : "revert internal of a shut-off domain, QEMU half started";
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(attached ? q.mon.get() : nullptr, attached);
        add_snapshot(t, "running", false);
        std::vector<Rec> recs = {{Rec::Intent, "start-qemu", {{"paused", int64_t(1)}, {"memory", ""}}}};
        if (attached) recs.push_back({Rec::Done, "start-qemu", {}});
        auto st = write_op_journal("snapshot-revert", revert_header("internal-online", false, false, false), recs);
        bool gone = false;
        recover_twice(tap, label, t, st, recover_snapshot_revert, gone);
        tap.ok(gone && t.halts == (attached ? 1 : 0) && (attached || t.discards >= 1),
               label + ": " + (attached ? "stopped" : "the unattached QEMU is discarded"));
    }
}

// a.qcow2 and b.qcow2: 0xaa at s1, 0xbb now.
void images_with_s1() {
    fresh_images();
    for (const auto &img : {p("a.qcow2"), p("b.qcow2")}) {
        qemu_io(img, "write -P 0xaa 0 64k");
        (void)qemu::qemu_img::snapshot_create(img, "s1");
        qemu_io(img, "write -P 0xbb 0 64k");
    }
}

void test_revert_internal_offline(Tap &tap) {
    // killed at the second apply: both disks go back to the undo tags
    {
        images_with_s1();
        const std::string undo(kRevertUndoTag);
        for (const auto &img : {p("a.qcow2"), p("b.qcow2")}) (void)qemu::qemu_img::snapshot_create(img, undo);
        (void)qemu::qemu_img::snapshot_apply(p("a.qcow2"), "s1");
        FakeTarget t(nullptr, false);
        add_snapshot(t, "shutoff", false);
        auto disk = [](const char *d, const std::string &path) { return JournalFields{{"disk", d}, {"path", path}}; };
        auto st = write_op_journal("snapshot-revert", revert_header("internal-offline", false, false, false),
                                   {{Rec::Intent, "save-undo", disk("vda", p("a.qcow2"))}, {Rec::Done, "save-undo", {}},
                                    {Rec::Intent, "save-undo", disk("vdb", p("b.qcow2"))}, {Rec::Done, "save-undo", {}},
                                    {Rec::Intent, "apply", disk("vda", p("a.qcow2"))}, {Rec::Done, "apply", {}},
                                    {Rec::Intent, "apply", disk("vdb", p("b.qcow2"))}});
        bool gone = false;
        recover_twice(tap, "revert shut off, killed at apply", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && qemu_io(p("a.qcow2"), "read -P 0xbb 0 64k") && qemu_io(p("b.qcow2"), "read -P 0xbb 0 64k"),
               "revert shut off, not committed: both disks as before the revert");
        tap.ok(!has_tag(p("a.qcow2"), undo) && !has_tag(p("b.qcow2"), undo) && has_tag(p("a.qcow2"), "s1"),
               "revert shut off, not committed: undo tags gone, snapshot kept");
        tap.ok(!t.list.current_name() && t.saves == 0, "revert shut off, not committed: definition and current untouched");
    }
    // committed before QEMU was stopped: stop it, apply, boot as asked
    {
        images_with_s1();
        FakeQemu q, q2;
        q2.running = false;
        FakeTarget t(q.mon.get(), true);
        t.attach_on_start = q2.mon.get();
        add_snapshot(t, "shutoff", false);
        auto st = write_op_journal("snapshot-revert", revert_header("internal-offline", true, true, true),
                                   {{Rec::Commit, "", {}}});
        bool gone = false;
        recover_twice(tap, "revert shut off of a running domain, committed", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && t.halts == 1, "revert shut off, committed: the old QEMU is stopped once");
        tap.ok(qemu_io(p("a.qcow2"), "read -P 0xaa 0 64k"), "revert shut off, committed: disk at the snapshot");
        tap.ok(t.starts.size() == 1 && t.starts[0].paused, "revert shut off, committed: booted paused once",
               std::to_string(t.starts.size()));
        tap.ok(t.list.current_name() == std::optional<std::string>("s1"), "revert shut off, committed: current");
    }
}

void test_revert_external(Tap &tap) {
    const std::string ov = p("a.s1-revert1");
    // not committed: the new overlay goes
    {
        fresh_images();
        (void)qemu::qemu_img::create_overlay(ov, p("a.qcow2"), "qcow2");
        FakeQemu q;
        FakeTarget t(q.mon.get(), true);
        add_snapshot(t, "disk-snapshot", true);
        auto st = write_op_journal("snapshot-revert", revert_header("external", true, false, false),
                                   {{Rec::Intent, "create-overlay", {{"disk", "vda"}, {"path", ov}, {"base", p("a.qcow2")}}},
                                    {Rec::Done, "create-overlay", {}}});
        bool gone = false;
        recover_twice(tap, "revert external, not committed", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && !file::exists(ov) && t.halts == 0 && t.saves == 0,
               "revert external, not committed: overlay unlinked, domain untouched");
    }
    // committed, the old QEMU still runs: stopped, definitions, started from memory
    {
        fresh_images();
        (void)qemu::qemu_img::create_overlay(ov, p("a.qcow2"), "qcow2");
        FakeQemu q, q2;
        q2.running = false;
        FakeTarget t(q.mon.get(), true);
        t.attach_on_start = q2.mon.get();
        add_snapshot(t, "running", true, p("mem.s1"));
        auto st = write_op_journal("snapshot-revert", revert_header("external-memory", true, false, false),
                                   {{Rec::Intent, "create-overlay", {{"disk", "vda"}, {"path", ov}, {"base", p("a.qcow2")}}},
                                    {Rec::Done, "create-overlay", {}},
                                    {Rec::Commit, "", {{"persistent", domain_xml(ov, p("b.qcow2"))},
                                                       {"live", domain_xml(ov, p("b.qcow2"))}}}});
        bool gone = false;
        recover_twice(tap, "revert external memory, committed", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && t.halts == 1 && t.src(false, "vda") == ov,
               "revert external memory, committed: old QEMU stopped, persistent definition on the new overlay");
        tap.ok(t.starts.size() == 1 && t.starts[0].first_disk == ov && t.starts[0].memory == p("mem.s1") &&
                   !t.starts[0].paused,
               "revert external memory, committed: started once from the memory image");
        tap.ok(file::exists(ov) && t.list.current_name() == std::optional<std::string>("s1"),
               "revert external memory, committed: overlay kept, current");
    }
    // committed and started: only resumed
    {
        fresh_images();
        FakeQemu q;
        q.running = false;
        FakeTarget t(q.mon.get(), true);
        add_snapshot(t, "running", true, p("mem.s1"));
        auto st = write_op_journal("snapshot-revert", revert_header("external-memory", true, false, false),
                                   {{Rec::Commit, "", {{"persistent", domain_xml(ov, p("b.qcow2"))},
                                                       {"live", domain_xml(ov, p("b.qcow2"))}}},
                                    {Rec::Intent, "stop-qemu", {}}, {Rec::Done, "stop-qemu", {}},
                                    {Rec::Intent, "start-qemu", {{"paused", int64_t(0)}, {"memory", p("mem.s1")}}},
                                    {Rec::Done, "start-qemu", {}}});
        bool gone = false;
        recover_twice(tap, "revert external memory, started", t, st, recover_snapshot_revert, gone);
        tap.ok(gone && t.halts == 0 && t.starts.empty() && q.running && t.resumes_from_snapshot >= 1,
               "revert external memory, started: the new QEMU is resumed, not restarted");
    }
}

void test_delete(Tap &tap) {
    // nothing committed: nothing changed
    {
        fresh_images();
        FakeTarget t(nullptr, false);
        add_snapshot(t, "shutoff", false);
        auto st = write_op_journal("snapshot-delete", delete_header("internal"), {});
        bool gone = false;
        recover_twice(tap, "delete, not committed", t, st, recover_snapshot_delete, gone);
        tap.ok(gone && t.list.contains("s1"), "delete, not committed: the snapshot stays");
    }
    // internal, shut off: killed after the first qemu-img snapshot -d
    {
        images_with_s1();
        (void)qemu::qemu_img::snapshot_delete(p("a.qcow2"), "s1");
        FakeTarget t(nullptr, false);
        add_snapshot(t, "shutoff", false);
        auto st = write_op_journal("snapshot-delete", delete_header("internal"),
                                   {{Rec::Commit, "", {{"tag", "s1"}}},
                                    {Rec::Intent, "qemu-img-delete", {{"disk", "vda"}, {"path", p("a.qcow2")}}},
                                    {Rec::Done, "qemu-img-delete", {}}});
        bool gone = false;
        recover_twice(tap, "delete internal shut off, committed", t, st, recover_snapshot_delete, gone);
        tap.ok(gone && !has_tag(p("a.qcow2"), "s1") && !t.list.contains("s1"),
               "delete internal shut off, committed: tag and metadata gone");
    }
    // internal, running: QEMU's job concluded; the tag is still in the image: deleted again
    {
        images_with_s1();
        FakeQemu q;
        q.jobs["snapshot-delete"] = {"snapshot-delete", "concluded", std::nullopt, "", ""};
        FakeTarget t(q.mon.get(), true);
        add_snapshot(t, "running", false);
        JournalFields f{{"tag", "s1"}, {"device0", "libvirt-1-format"}};
        auto st = write_op_journal("snapshot-delete", delete_header("internal"),
                                   {{Rec::Commit, "", f}, {Rec::Intent, "snapshot-delete", f}});
        bool gone = false;
        recover_twice(tap, "delete internal running, committed", t, st, recover_snapshot_delete, gone);
        tap.ok(gone && q.saw("job-dismiss") && q.saw("snapshot-delete s1") && !t.list.contains("s1"),
               "delete internal running: job settled, deleted again, metadata gone");
    }
}

// base a.qcow2 <- overlay a.s1 (0x22 at 64k): s1's disk vda.
JournalFields commit_plan(int depth) {
    std::vector<ExternalDiskDelete> plan(1);
    plan[0].target = "vda";
    plan[0].mode = ExternalDeleteMode::Commit;
    plan[0].overlay = ImageRefs::canonical(p("a.s1"));
    plan[0].base = ImageRefs::canonical(p("a.qcow2"));
    plan[0].base_format = "qcow2";
    plan[0].running_depth = depth;
    return external_delete_commit_fields(plan);
}

void overlay_on_a() {
    fresh_images();
    qemu_io(p("a.qcow2"), "write -P 0x11 0 64k");
    (void)qemu::qemu_img::create_overlay(p("a.s1"), p("a.qcow2"), "qcow2");
    qemu_io(p("a.s1"), "write -P 0x22 64k 64k");
}

void test_delete_external(Tap &tap) {
    // shut off, killed during qemu-img commit
    {
        overlay_on_a();
        FakeTarget t(nullptr, false);
        t.pers = domain(p("a.s1"), p("b.qcow2"));
        add_snapshot(t, "disk-snapshot", true);
        auto st = write_op_journal("snapshot-delete", delete_header("external"),
                                   {{Rec::Commit, "", commit_plan(-1)},
                                    {Rec::Intent, "qemu-img-commit", {{"disk", "vda"}}}});
        bool gone = false;
        recover_twice(tap, "delete external shut off, committed", t, st, recover_snapshot_delete, gone);
        tap.ok(gone && qemu_io(p("a.qcow2"), "read -P 0x22 64k 64k") && qemu_io(p("a.qcow2"), "read -P 0x11 0 64k"),
               "delete external shut off: the overlay's data is in the base");
        tap.ok(t.src(false, "vda") == p("a.qcow2") && !file::exists(p("a.s1")) && !t.list.contains("s1"),
               "delete external shut off: definition on the base, overlay unlinked, metadata gone");
    }
    // running, O the active top; killed at ready (job still there) or before the job (none)
    for (bool job : {true, false}) {
        std::string label = job ? "delete external running, job ready" : "delete external running, no job yet";
        overlay_on_a();
        FakeQemu q;
        q.nodes = {{"libvirt-1-format", p("a.qcow2")}, {"libvirt-1-storage", p("a.qcow2")},
                   {"libvirt-2-format", p("b.qcow2")}, {"libvirt-2-storage", p("b.qcow2")},
                   {"libvirt-3-format", p("a.s1")},    {"libvirt-3-storage", p("a.s1")}};
        q.tops = {{"vda", "libvirt-3-format"}, {"vdb", "libvirt-2-format"}};
        if (job) q.jobs["commit-vda"] = {"commit", "ready", std::nullopt, "vda", "libvirt-1-format"};
        FakeTarget t(q.mon.get(), true);
        t.pers = domain(p("a.s1"), p("b.qcow2"));
        t.live = t.pers;
        t.graph = {{"vda", {{3, "libvirt-3-storage", "libvirt-3-format"}, {1, "libvirt-1-storage", "libvirt-1-format"}}},
                   {"vdb", {{2, "libvirt-2-storage", "libvirt-2-format"}}}};
        add_snapshot(t, "disk-snapshot", true);
        std::vector<Rec> recs = {{Rec::Commit, "", commit_plan(0)}};
        if (job) recs.push_back({Rec::Intent, "block-commit", {{"disk", "vda"}, {"top", "libvirt-3-format"}}});
        auto st = write_op_journal("snapshot-delete", delete_header("external"), recs);
        bool gone = false;
        auto mid = recover_twice(tap, label, t, st, recover_snapshot_delete, gone);
        tap.ok(gone && q.saw("job-complete") && (job || q.saw("block-commit")),
               label + ": " + (job ? "pivoted" : "committed again and pivoted"));
        tap.ok(mid.intended("pivot"), label + ": the pivot is journalled");
        tap.ok(q.saw("blockdev-del libvirt-3-format") && q.saw("blockdev-del libvirt-3-storage"),
               label + ": the overlay's nodes removed");
        tap.ok(t.graph.size() == 2 && t.graph[0].layers.size() == 1 && t.graph[0].top_node() == "libvirt-1-format",
               label + ": block graph without the overlay");
        tap.ok(t.src(true, "vda") == p("a.qcow2") && t.src(false, "vda") == p("a.qcow2"),
               label + ": live and persistent definitions on the base");
        tap.ok(!file::exists(p("a.s1")) && !t.list.contains("s1"), label + ": overlay unlinked, metadata gone");
    }
    // running, QEMU gone since: committed unless the pivot is known to be done
    for (bool pivot_done : {false, true}) {
        std::string label = pivot_done ? "delete external, QEMU gone after the pivot"
                                       : "delete external, QEMU gone before the pivot";
        overlay_on_a();
        FakeTarget t(nullptr, false);
        t.pers = domain(p("a.s1"), p("b.qcow2"));
        add_snapshot(t, "disk-snapshot", true);
        std::vector<Rec> recs = {{Rec::Commit, "", commit_plan(0)},
                                 {Rec::Intent, "block-commit", {{"disk", "vda"}}}};
        if (pivot_done) {
            recs.push_back({Rec::Intent, "pivot", {{"disk", "vda"}}});
            recs.push_back({Rec::Done, "pivot", {}});
        }
        auto st = write_op_journal("snapshot-delete", delete_header("external"), recs);
        bool gone = false;
        recover_twice(tap, label, t, st, recover_snapshot_delete, gone);
        bool has_overlay_data = qemu_io(p("a.qcow2"), "read -P 0x22 64k 64k");
        tap.ok(gone && has_overlay_data == !pivot_done,
               label + (pivot_done ? ": the base is not overwritten with the overlay" : ": the overlay is committed"));
        tap.ok(t.src(false, "vda") == p("a.qcow2") && !file::exists(p("a.s1")), label + ": on the base, overlay unlinked");
    }
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
    test_revert_internal_online(tap);
    test_revert_internal_offline(tap);
    test_revert_external(tap);
    test_delete(tap);
    test_delete_external(tap);
    return tap.finish();
}
