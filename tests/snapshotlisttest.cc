// snapshotlisttest.cc - SnapshotList: queries, list flags, redefine rules,
// metadata files, delete re-parenting, crash recovery of "current", bulk load,
// libvirt-written metadata files and the start-up index.

#include "conf/snapshot_list.hh"
#include "tap.hh"
#include "util/file.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::conf;
using virtsnap::test::Tap;

namespace {

const char *kUuid = "0b2d6a8e-4f1c-4e2a-9d57-3f6c1a2b9e01";
const char *kOtherUuid = "11111111-2222-3333-4444-555555555555";

std::string domain_xml(const char *uuid = kUuid) {
    return std::string("  <domain type='kvm'>\n"
                       "    <name>dom1</name>\n"
                       "    <uuid>") +
           uuid +
           "</uuid>\n"
           "    <memory unit='KiB'>1048576</memory>\n"
           "    <currentMemory unit='KiB'>1048576</currentMemory>\n"
           "    <vcpu placement='static'>1</vcpu>\n"
           "    <os>\n"
           "      <type arch='x86_64' machine='pc'>hvm</type>\n"
           "    </os>\n"
           "    <devices>\n"
           "      <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
           "      <disk type='file' device='disk'>\n"
           "        <driver name='qemu' type='qcow2'/>\n"
           "        <source file='/var/lib/images/dom1.qcow2'/>\n"
           "        <target dev='vda' bus='virtio'/>\n"
           "      </disk>\n"
           "    </devices>\n"
           "  </domain>\n";
}

struct SnapSpec {
    std::string name, parent, state;
    long long time = 0;
    bool external = false;
    bool with_domain = true;
    const char *uuid = kUuid;
    std::string description;
};

std::string snap_xml(const SnapSpec &s) {
    std::string x = "<domainsnapshot>\n  <name>" + s.name + "</name>\n";
    if (!s.description.empty()) x += "  <description>" + s.description + "</description>\n";
    x += "  <state>" + s.state + "</state>\n";
    if (!s.parent.empty()) x += "  <parent>\n    <name>" + s.parent + "</name>\n  </parent>\n";
    x += "  <creationTime>" + std::to_string(s.time) + "</creationTime>\n";
    if (s.external) {
        x += "  <memory snapshot='no'/>\n  <disks>\n    <disk name='vda' snapshot='external'>\n"
             "      <source file='/var/lib/images/dom1." + s.name + "'/>\n    </disk>\n  </disks>\n";
    }
    if (s.with_domain) x += domain_xml(s.uuid);
    x += "</domainsnapshot>\n";
    return x;
}

std::unique_ptr<SnapshotDef> parse(const SnapSpec &s) {
    auto r = SnapshotDef::parse_string(snap_xml(s), kSnapshotParseRedefine);
    if (!r) {
        std::fprintf(stderr, "parse of %s failed: %s\n", s.name.c_str(), r.error().message().c_str());
        std::abort();
    }
    return std::move(*r);
}

std::string join(const std::vector<std::string> &v) {
    std::string out;
    for (auto &s : v) out += (out.empty() ? "" : " ") + s;
    return out;
}

std::string join(const Result<std::vector<std::string>> &r) {
    if (!r) return "ERROR: " + r.error().message();
    return join(*r);
}

template <typename T>
bool expect_error(Tap &t, const Result<T> &r, virErrorNumber code, virErrorDomain domain, const std::string &detail,
                  const std::string &name) {
    if (r) return t.ok(false, name, "succeeded");
    bool same = r.error().code == code && r.error().domain == domain && r.error().detail == detail;
    return t.ok(same, name,
                "got: " + std::to_string(r.error().code) + "/" + std::to_string(r.error().domain) + " " +
                    r.error().detail + "\nexpected: " + std::to_string(code) + "/" + std::to_string(domain) + " " +
                    detail);
}

Uuid uuid() { return *Uuid::parse(kUuid); }

std::string file_text(const std::string &path) { return test::read_text(path); }

bool claims_current(const std::string &path) { return file_text(path).find("<active>1</active>") != std::string::npos; }

std::string parent_in_file(const std::string &path) {
    auto def = snapshot_parse_metadata_file(file_text(path));
    if (!def) return "ERROR";
    return (*def)->parent_name;
}

// The fixed tree, in creation order (times increase):
//   a (shutoff) ── b (running) ── c (disk-snapshot, external)
//     │               └── d (running) ── e (paused)     [current]
//     └── f (shutoff)
//   g (running)
// g is created before f, so creation order differs from topological order;
// siblings list newest first, as libvirt prepends them.
std::vector<SnapSpec> tree_specs() {
    return {
        {"a", "", "shutoff", 1000}, {"b", "a", "running", 1001},          {"c", "b", "disk-snapshot", 1002, true},
        {"d", "b", "running", 1003}, {"e", "d", "paused", 1004},           {"g", "", "running", 1005},
        {"f", "a", "shutoff", 1006},
    };
}

void build_tree(Tap &t, SnapshotList &list, const std::string &tag) {
    bool all = true;
    for (auto &s : tree_specs()) {
        unsigned flags = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
        if (s.name == "e") flags |= VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT;
        auto r = list.redefine(parse(s), flags);
        if (!r) {
            all = false;
            t.note("redefine " + s.name + ": " + r.error().message());
        }
    }
    t.ok(all, tag + ": tree built by redefine");
}

void test_queries(Tap &t, SnapshotList &list, const std::string &tag) {
    t.eq(list.count(), size_t(7), tag + ": count");
    t.eq(list.current_name().value_or("-"), std::string("e"), tag + ": current is e");
    t.ok(list.has_current(), tag + ": has_current");
    auto cur = list.is_current("e");
    t.ok(cur && *cur, tag + ": is_current(e)");
    auto notcur = list.is_current("d");
    t.ok(notcur && !*notcur, tag + ": !is_current(d)");
    auto p = list.parent("e");
    t.eq(p ? (*p)->name : std::string("ERR"), std::string("d"), tag + ": parent(e) = d");
    auto pf = list.parent("f");
    t.eq(pf ? (*pf)->name : std::string("ERR"), std::string("a"), tag + ": parent(f) = a");
    expect_error(t, list.parent("a"), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU, "snapshot 'a' does not have a parent",
                 tag + ": parent of a root is error 72");
    expect_error(t, list.find("zz"), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                 "no domain snapshot with matching name 'zz'", tag + ": find unknown");
    auto f = list.find("c");
    t.ok(f && (*f)->state == SnapshotState::DiskSnapshot && (*f)->is_external(), tag + ": find(c) external disk-only");

    // Every list flag of ListAllSnapshots on the whole domain.
    const std::vector<std::pair<unsigned, std::string>> all_cases = {
        {0, "a b c d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, "g a f b d e c"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ROOTS, "g a"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, "g a"},
        {VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, "c e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES, "a b d"},
        {VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES, ""},
        {VIR_DOMAIN_SNAPSHOT_LIST_METADATA, "a b c d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA, ""},
        {VIR_DOMAIN_SNAPSHOT_LIST_METADATA | VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA, "a b c d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE, "a f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE, "b d e g"},
        {VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY, "c"},
        {VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY, "a c f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY, "b c d e g"},
        {VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY,
         "a b c d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL, "a b d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL, "c"},
        {VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL | VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL, "a b c d e g f"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE, "a"},
        {VIR_DOMAIN_SNAPSHOT_LIST_ROOTS | VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, "g"},
        {VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE, "e g"},
        {VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE, "b d"},
        {VIR_DOMAIN_SNAPSHOT_LIST_LEAVES | VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL,
         "g f e"},
        {VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_LIST_INTERNAL, ""},
        {VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL | VIR_DOMAIN_SNAPSHOT_LIST_INACTIVE | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE,
         "g a f b d e"},
    };
    for (auto &[flags, expected] : all_cases) {
        char name[96];
        std::snprintf(name, sizeof name, ": list_all(0x%x)", flags);
        t.eq(join(list.list_all(flags)), expected, tag + name);
        // num() takes the same filters but no TOPOLOGICAL.
        if (!(flags & VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL)) {
            auto n = list.num(flags);
            size_t words = expected.empty() ? 0 : size_t(std::count(expected.begin(), expected.end(), ' ') + 1);
            std::snprintf(name, sizeof name, ": num(0x%x)", flags);
            t.eq(n ? *n : -1, int(words), tag + name);
        }
    }
    t.eq(join(list.list_names(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, 3)), std::string("g a f"),
         tag + ": list_names truncates to maxnames");
    t.eq(join(list.list_names(0, 100)), std::string("a b c d e g f"), tag + ": list_names(0)");

    // Children of a given snapshot.
    const std::vector<std::tuple<std::string, unsigned, std::string>> child_cases = {
        {"a", 0, "f b"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, "f b d e c"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL, "f b d e c"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, "f e c"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_NO_LEAVES, "b d"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_ACTIVE, "b d e"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL, "c"},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_LEAVES, "f"},
        {"b", 0, "d c"},
        {"b", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, "d e c"},
        {"b", VIR_DOMAIN_SNAPSHOT_LIST_DISK_ONLY, "c"},
        {"d", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, "e"},
        {"e", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS, ""},
        {"g", 0, ""},
        {"a", VIR_DOMAIN_SNAPSHOT_LIST_NO_METADATA, ""},
    };
    for (auto &[from, flags, expected] : child_cases) {
        char name[96];
        std::snprintf(name, sizeof name, ": list_all_children(%s, 0x%x)", from.c_str(), flags);
        t.eq(join(list.list_all_children(from, flags)), expected, tag + name);
        t.eq(join(list.list_children_names(from, flags, 100)), expected, tag + name + " (names)");
        if (!(flags & VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL)) {
            auto n = list.num_children(from, flags);
            size_t words = expected.empty() ? 0 : size_t(std::count(expected.begin(), expected.end(), ' ') + 1);
            std::snprintf(name, sizeof name, ": num_children(%s, 0x%x)", from.c_str(), flags);
            t.eq(n ? *n : -1, int(words), tag + name);
        }
    }
    expect_error(t, list.list_all_children("zz", 0), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                 "no domain snapshot with matching name 'zz'", tag + ": children of unknown");
}

void test_flag_checks(Tap &t, SnapshotList &list) {
    expect_error(t, list.num(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x400) in function qemuDomainSnapshotNum", "num refuses TOPOLOGICAL");
    expect_error(t, list.list_all(1u << 12), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x1000) in function qemuDomainListAllSnapshots", "list_all unknown flag");
    expect_error(t, list.list_names(1u << 11, 10), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x800) in function qemuDomainSnapshotListNames", "list_names unknown flag");
    expect_error(t, list.num_children("a", VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x400) in function qemuDomainSnapshotNumChildren", "num_children TOPOLOGICAL");
    expect_error(t, list.list_children_names("zz", 1u << 12, 5), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x1000) in function qemuDomainSnapshotListChildrenNames",
                 "flags are checked before the name");
    expect_error(t, list.list_all_children("a", 1u << 12), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x1000) in function qemuDomainSnapshotListAllChildren",
                 "list_all_children unknown flag");
    expect_error(t, list.get_xml("a", 2), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x2) in function qemuDomainSnapshotGetXMLDesc", "get_xml unknown flag");
}

void test_redefine_errors(Tap &t, SnapshotList &list) {
    auto r1 = list.redefine(parse({"x", "x", "running", 2000}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r1, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN, "cannot set moment x as its own parent",
                 "redefine: own parent");
    auto r2 = list.redefine(parse({"x", "nope", "running", 2000}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r2, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN, "parent nope for moment x not found",
                 "redefine: missing parent");
    auto r3 = list.redefine(parse({"b", "e", "running", 1001}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r3, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN, "parent d would create cycle to b",
                 "redefine: cycle");
    auto r4 = list.redefine(parse({"x", "", "running", 2000}),
                            VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY);
    expect_error(t, r4, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                 "disk-only flag for snapshot x requires disk-snapshot state", "redefine: DISK_ONLY needs disk state");
    SnapSpec wrong{"x", "", "running", 2000};
    wrong.uuid = kOtherUuid;
    auto r5 = list.redefine(parse(wrong), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r5, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                 std::string("definition for snapshot x must use uuid ") + kUuid, "redefine: uuid mismatch");
    auto r6 = list.redefine(parse({"b", "a", "shutoff", 1001}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r6, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                 "cannot change between online and offline snapshot state in snapshot b",
                 "redefine: online to offline");
    auto r7 = list.redefine(parse({"a", "", "disk-snapshot", 1000}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r7, VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                 "cannot change between disk only and full system in snapshot a", "redefine: full to disk-only");
    SnapSpec nodom{"x", "", "shutoff", 2000};
    nodom.with_domain = false;
    auto r8 = list.redefine(parse(nodom), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
    expect_error(t, r8, VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "missing domain in snapshot",
                 "redefine: new snapshot without domain");
    t.ok(!list.contains("x") && list.count() == 7, "failed redefines changed nothing");
    t.eq(list.current_name().value_or("-"), std::string("e"), "failed redefines kept current");
}


// A fresh domain directory holding the fixed tree.
std::unique_ptr<SnapshotList> fresh_tree(Tap &t, const StateLayout &layout, const std::string &domain,
                                         const std::string &tag) {
    auto list = std::make_unique<SnapshotList>();
    auto r = list->load(layout, domain, uuid());
    if (!r) t.ok(false, tag + ": load", r.error().message());
    build_tree(t, *list, tag);
    return list;
}

std::string names_of(const SnapshotRemoval &r) {
    std::vector<std::string> v;
    for (auto &p : r.removed) v.push_back(p.first);
    return join(v);
}

std::string files_in(const std::string &dir) {
    auto names = file::list_dir(dir);
    if (!names) return "ERROR";
    return join(*names);
}

void test_delete(Tap &t, const StateLayout &layout) {
    // Root with children: children become roots, files rewritten.
    {
        auto list = fresh_tree(t, layout, "del-root", "del-root");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-root";
        auto r = list->remove_metadata("a", MomentRemoveMode::Single);
        t.ok(r && names_of(*r) == "a" && join(r->reparented) == "f b" && !r->current_changed,
             "delete root a: removed a, reparented f b");
        t.eq(join(list->list_all(VIR_DOMAIN_SNAPSHOT_LIST_ROOTS)), std::string("f b g"), "f and b are roots, ahead of g");
        expect_error(t, list->parent("b"), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                     "snapshot 'b' does not have a parent", "b has no parent in memory");
        t.eq(parent_in_file(dir + "/b.xml") + "|" + parent_in_file(dir + "/f.xml"), std::string("|"),
             "b and f files have no parent");
        auto def = list->find("b");
        t.ok(def && (*def)->parent_name.empty(), "b's definition has no parent");
        t.eq(files_in(dir), std::string("b.xml c.xml d.xml e.xml f.xml g.xml"), "a.xml unlinked");
        SnapshotList again;
        auto l = again.load(layout, "del-root", uuid());
        t.ok(l && join(again.list_all(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL)) == "f g b d e c" &&
                 again.current_name() == std::optional<std::string>("e"),
             "reload after deleting the root");
    }
    // Middle: d's child e moves to b; e stays current.
    {
        auto list = fresh_tree(t, layout, "del-mid", "del-mid");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-mid";
        auto r = list->remove_metadata("b", MomentRemoveMode::Single);
        t.ok(r && names_of(*r) == "b" && join(r->reparented) == "d c", "delete middle b: d c reparented");
        t.eq(join(list->list_all_children("a", 0)), std::string("d c f"), "a's children are d c f");
        t.eq(parent_in_file(dir + "/c.xml") + parent_in_file(dir + "/d.xml"), std::string("aa"),
             "c and d files name a");
        t.ok(claims_current(dir + "/e.xml") && list->current_name() == std::optional<std::string>("e"),
             "current untouched");
    }
    // Leaf, not current.
    {
        auto list = fresh_tree(t, layout, "del-leaf", "del-leaf");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-leaf";
        auto r = list->remove_metadata("c", MomentRemoveMode::Single);
        t.ok(r && names_of(*r) == "c" && r->reparented.empty() && list->count() == 6 &&
                 !file::exists(dir + "/c.xml"),
             "delete leaf c");
        t.eq(join(list->list_all_children("b", 0)), std::string("d"), "b has only d");
    }
    // The current leaf: current moves to the parent, in memory and on disk.
    {
        auto list = fresh_tree(t, layout, "del-cur", "del-cur");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-cur";
        auto r = list->remove_metadata("e", MomentRemoveMode::Single);
        t.ok(r && r->current_changed && r->current == std::optional<std::string>("d"), "delete current e: d current");
        t.ok(claims_current(dir + "/d.xml") && !file::exists(dir + "/e.xml"), "d's file claims current");
        auto r2 = list->remove_metadata("g", MomentRemoveMode::Single);
        t.ok(r2 && !r2->current_changed && list->current_name() == std::optional<std::string>("d"),
             "deleting another root keeps current");
        // A current root: no current afterwards.
        auto s = list->set_current("a");
        auto r3 = list->remove_metadata("a", MomentRemoveMode::Single);
        t.ok(s && r3 && r3->current_changed && !r3->current && !list->has_current(), "delete current root: none");
        expect_error(t, list->current(), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                     "the domain does not have a current snapshot", "current() without one");
        SnapshotList again;
        auto l = again.load(layout, "del-cur", uuid());
        t.ok(l && !again.has_current() && again.count() == 4, "reload: no current");
    }
    // CHILDREN: b and everything below; current e was below, so a becomes current.
    {
        auto list = fresh_tree(t, layout, "del-children", "del-children");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-children";
        auto r = list->remove_metadata("b", MomentRemoveMode::WithChildren);
        t.ok(r && names_of(*r) == "d e c b", "CHILDREN removes descendants in pre-order, then b");
        t.ok(r && r->current == std::optional<std::string>("a") && claims_current(dir + "/a.xml"),
             "CHILDREN: current moves to b's parent");
        t.eq(files_in(dir), std::string("a.xml f.xml g.xml"), "CHILDREN: files gone");
        t.eq(join(list->list_all(0)), std::string("a g f"), "CHILDREN: remaining");
    }
    // CHILDREN_ONLY: b stays and becomes current.
    {
        auto list = fresh_tree(t, layout, "del-conly", "del-conly");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-conly";
        auto r = list->remove_metadata("b", MomentRemoveMode::ChildrenOnly);
        t.ok(r && names_of(*r) == "d e c", "CHILDREN_ONLY removes d e c");
        t.ok(r && r->current == std::optional<std::string>("b") && claims_current(dir + "/b.xml"),
             "CHILDREN_ONLY: b becomes current");
        auto n = list->num_children("b", 0);
        t.ok(n && *n == 0 && list->count() == 4, "CHILDREN_ONLY: b has no children");
        auto r2 = list->remove_metadata("g", MomentRemoveMode::ChildrenOnly);
        t.ok(r2 && r2->removed.empty() && list->contains("g"), "CHILDREN_ONLY of a leaf removes nothing");
        t.eq(std::size_t(moment_remove_mode_from_flags(VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY |
                                                       VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)),
             std::size_t(MomentRemoveMode::ChildrenOnly), "mode from delete flags");
        expect_error(t, list->remove_metadata("zz", MomentRemoveMode::Single), VIR_ERR_NO_DOMAIN_SNAPSHOT,
                     VIR_FROM_QEMU, "no domain snapshot with matching name 'zz'", "delete unknown");
    }
    // remove_all (undefine --snapshots-metadata).
    {
        auto list = fresh_tree(t, layout, "del-all", "del-all");
        auto st = list->remove_all();
        t.ok(st && list->count() == 0 && !list->has_current() &&
                 !file::exists(layout.root() + "/lib/qemu/snapshot/del-all"),
             "remove_all drops everything and the directory");
    }
    // A write failure changes nothing in memory.
    if (geteuid() != 0) {
        auto list = fresh_tree(t, layout, "del-ro", "del-ro");
        std::string dir = layout.root() + "/lib/qemu/snapshot/del-ro";
        std::filesystem::permissions(dir, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
        auto r = list->remove_metadata("b", MomentRemoveMode::Single);
        auto r2 = list->redefine(parse({"x", "a", "running", 3000}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
        auto r3 = list->set_current("a");
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
        t.ok(!r && !r2 && !r3, "writes into a read-only directory fail");
        t.ok(list->count() == 7 && list->contains("b") && !list->contains("x") &&
                 list->current_name() == std::optional<std::string>("e") &&
                 join(list->list_all_children("b", 0)) == "d c",
             "failed changes left memory as it was");
        t.eq(parent_in_file(dir + "/c.xml"), std::string("b"), "failed delete left the files as they were");
    } else {
        t.skip("write failure", "running as root: permissions do not stop writes");
    }
}

void test_crash_current(Tap &t, const StateLayout &layout) {
    auto list = fresh_tree(t, layout, "crash", "crash");
    std::string dir = layout.root() + "/lib/qemu/snapshot/crash";
    // A crash between writing the new current (b, older) and clearing the old
    // one (e, newer): both claim. The newer creationTime wins.
    auto b = list->find("b");
    auto st = file::write_atomic(dir + "/b.xml", snapshot_metadata_file_text(**b, uuid(), true));
    t.ok(st.has_value() && claims_current(dir + "/b.xml") && claims_current(dir + "/e.xml"), "two files claim current");
    SnapshotList again;
    auto r = again.load(layout, "crash", uuid());
    t.ok(r && r->files.current_claims == 2, "load sees two claims");
    t.eq(again.current_name().value_or("-"), std::string("e"), "the newer claim (e) wins");
    // The other way round: the newer one is f.
    auto f = list->find("f");
    st = file::write_atomic(dir + "/f.xml", snapshot_metadata_file_text(**f, uuid(), true));
    SnapshotList third;
    auto r2 = third.load(layout, "crash", uuid());
    t.ok(st.has_value() && r2 && r2->files.current_claims == 3, "three claims");
    t.eq(third.current_name().value_or("-"), std::string("f"), "the newest claim (f) wins");
    // Stray temporaries and broken files are skipped.
    st = file::write_atomic(dir + "/zz.xml.new", "<domainsnapshot>");
    auto st2 = file::write_atomic(dir + "/broken.xml", "<domainsnapshot><name>broken</name>");
    auto st3 = file::write_atomic(dir + "/dup.xml", file_text(dir + "/a.xml"));
    SnapshotList fourth;
    auto r3 = fourth.load(layout, "crash", uuid());
    t.ok(st && st2 && st3 && r3 && r3->files.skipped.size() == 2 && r3->files.ignored_temporaries.size() == 1 &&
             fourth.count() == 7,
         "broken file and duplicate skipped, temporary ignored");
    // A missing parent makes a root and clears current.
    auto rm = file::remove(dir + "/b.xml");
    SnapshotList fifth;
    auto r4 = fifth.load(layout, "crash", uuid());
    t.ok(rm && r4 && r4->files.inconsistent_relations && !fifth.has_current(), "missing parent clears current");
    t.eq(join(fifth.list_all(VIR_DOMAIN_SNAPSHOT_LIST_ROOTS)), std::string("g d c a"), "orphans become roots");
    auto c = fifth.find("c");
    t.ok(c && (*c)->parent_name.empty(), "orphan's definition names no parent");
}

void test_add_created(Tap &t, const StateLayout &layout) {
    auto list = fresh_tree(t, layout, "created", "created");
    std::string dir = layout.root() + "/lib/qemu/snapshot/created";
    auto def = parse({"h", "e", "running", 1100});
    auto r = list->add_created(std::move(def), true);
    t.ok(r && list->current_name() == std::optional<std::string>("h") && claims_current(dir + "/h.xml") &&
             !claims_current(dir + "/e.xml"),
         "add_created makes the new snapshot current, old claim cleared");
    auto p = list->parent("h");
    t.ok(p && (*p)->name == "e", "parent is the given current");
    auto dup = list->add_created(parse({"h", "", "running", 1101}), false);
    expect_error(t, dup, VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment h already exists",
                 "add_created duplicate");
    auto gone = list->add_created(parse({"i", "vanished", "running", 1102}), false);
    t.ok(gone && (*gone)->parent_name.empty() && list->current_name() == std::optional<std::string>("h"),
         "a vanished parent makes a root; current unchanged without make_current");
    // replace_def persists in place, parent kept from the tree.
    auto d = list->find("d");
    auto copy = std::make_unique<SnapshotDef>(**d);
    copy->description = "updated";
    copy->parent_name = "bogus";
    auto rep = list->replace_def(std::move(copy));
    t.ok(rep && (*rep)->parent_name == "b" && file_text(dir + "/d.xml").find("updated") != std::string::npos &&
             join(list->list_all_children("d", 0)) == "e",
         "replace_def persists and keeps relations");
}

void test_libvirt_files(Tap &t, const StateLayout &layout) {
    std::string shared = test::shared_dir();
    std::string fixtures = shared + "/fixtures/libvirt/qemudomainsnapshotxml2xmlout";
    if (shared.empty() || !file::exists(fixtures)) {
        t.skip("libvirt metadata files", "shared fixtures absent");
        return;
    }
    // Every fixture names its snapshot "my snap name": one domain directory each.
    const Uuid guest_uuid = *Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db1809");
    std::vector<std::string> with_active;
    for (auto &entry : std::filesystem::directory_iterator(fixtures)) {
        std::string text = file_text(entry.path().string());
        if (text.find("<active>") == std::string::npos) continue;
        with_active.push_back(entry.path().filename().string());
    }
    std::sort(with_active.begin(), with_active.end());
    t.ok(with_active.size() >= 2, "fixtures with <active>: " + join(with_active));
    for (const std::string &name : with_active) {
        std::string domain = "guest-" + name.substr(0, name.size() - 4);
        std::string dir = layout.root() + "/lib/qemu/snapshot/" + domain;
        std::filesystem::create_directories(dir);
        std::filesystem::copy_file(fixtures + "/" + name, dir + "/" + name);
        SnapshotList list;
        auto r = list.load(layout, domain, guest_uuid);
        bool loaded = r && r->files.skipped.empty() && list.count() == 1;
        t.ok(loaded, "libvirt metadata file " + name + " loads",
             r && !r->files.skipped.empty() ? r->files.skipped[0].error.message() : std::string());
        if (!loaded) continue;
        auto def = list.find("my snap name");
        auto xml = list.get_xml("my snap name", 0);
        t.ok(def && xml && xml->find("<name>my snap name</name>") != std::string::npos,
             name + ": found and formatted");
        bool claims = file_text(dir + "/" + name).find("<active>1</active>") != std::string::npos;
        bool has_parent = def && !(*def)->parent_name.empty();
        // A claim counts unless its parent is missing (that resets current).
        t.eq(list.has_current(), claims && !r->files.inconsistent_relations, name + ": current as libvirt decides");
        t.ok(!has_parent, name + ": a lone snapshot is a root in memory");
        if (name != "full_domain.xml") continue;
        t.ok((*def)->domain && (*def)->state == SnapshotState::Running &&
                 (*def)->creation_time == std::optional<int64_t>(1272917631) &&
                 xml->find("<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>") != std::string::npos,
             "full_domain.xml: state, time and domain");
        t.ok(r->files.inconsistent_relations && !list.has_current() && !list.parent("my snap name"),
             "full_domain.xml: missing parent earlier_snap makes a root and clears current");
    }
}

// The index file format on its own: names with every awkward byte survive,
// anything else is refused as a whole.
void test_index_format(Tap &t) {
    SnapshotIndex index;
    SnapshotIndexRecord r;
    r.file = "we\tird%\n.xml";
    r.stamp = {1, 2, 3, -4, 5};
    r.summary.name = "we\tird%\n";
    r.summary.parent = "p\x01arent";
    r.summary.claims_current = true;
    r.summary.creation_time = -12;
    r.summary.state_class = SnapshotStateClass::DiskOnly;
    r.summary.external = true;
    index.add(r);
    SnapshotIndexRecord root;
    root.file = "root.xml";
    root.summary.name = "root";
    index.add(root);
    std::string text = index.format();
    auto back = SnapshotIndex::parse(text);
    t.ok(back && back->size() == 2 && back->format() == text, "index round trip");
    const SnapshotSummary *found = back ? back->find(r.file, r.stamp) : nullptr;
    t.ok(found && found->name == r.summary.name && found->parent == r.summary.parent && found->claims_current &&
             found->creation_time == std::optional<int64_t>(-12) &&
             found->state_class == SnapshotStateClass::DiskOnly && found->external,
         "record fields survive escaping");
    file::FileStamp other = r.stamp;
    other.ctime_ns++;
    t.ok(back && !back->find(r.file, other) && !back->find("nope.xml", r.stamp), "other stamp or file: not found");
    t.ok(back && back->find("root.xml", root.stamp) && !back->find("root.xml", root.stamp)->creation_time,
         "no creation time stays absent");
    std::string torn = text.substr(0, text.size() - 1);
    for (const std::string &bad : {std::string(), std::string("garbage\n"), torn, text + "x\ty\n",
                                   std::string("virtsnap-snapshot-index 2\n")})
        t.ok(!SnapshotIndex::parse(bad), "refused: " + bad.substr(0, 30));
}

// The start-up index: a load after a clean shut-down reads no metadata file,
// parses definitions only when asked, and gives the same answers as a load
// that parses everything; any file that changed is parsed again.
void test_index(Tap &t, const StateLayout &layout) {
    const std::string dom = "indexed";
    const std::string dir = layout.root() + "/lib/qemu/snapshot/" + dom;
    const std::string index = layout.root() + "/lib/qemu/snapshot-index/" + dom + ".index";
    fresh_tree(t, layout, dom, "index");  // dropped at once: its destructor writes the index
    t.ok(file::exists(index), "index written when the changed list goes away");

    std::map<std::string, std::string> cold_xml;
    {
        std::filesystem::rename(index, index + ".away");
        SnapshotList cold;
        auto r = cold.load(layout, dom, uuid());
        t.ok(r && r->loaded == 7 && r->from_index == 0 && cold.parsed_count() == 7,
             "without the index every file is parsed");
        for (auto &s : tree_specs()) {
            auto x = cold.get_xml(s.name, VIR_DOMAIN_SNAPSHOT_XML_SECURE);
            cold_xml[s.name] = x ? *x : "ERROR";
        }
        std::filesystem::rename(index + ".away", index);
    }
    {
        SnapshotList warm;
        auto r = warm.load(layout, dom, uuid());
        t.ok(r && r->loaded == 7 && r->from_index == 7 && warm.parsed_count() == 0,
             "with the index no file is parsed at load");
        bool names_only = warm.list_all(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL).has_value() && warm.num(0).has_value() &&
                          warm.check_exists("c").has_value() && warm.parent_name("e").has_value() &&
                          warm.current_name().has_value() && warm.is_current("e").has_value() &&
                          warm.num_children("a", VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS).has_value() &&
                          warm.list_all(VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL).has_value();
        t.ok(names_only && warm.parsed_count() == 0, "lookups by name, listings and counts parse nothing",
             std::to_string(warm.parsed_count()));
        test_queries(t, warm, "from the index");
        const size_t parsed_before = warm.parsed_count();  // what the queries needed (find)
        bool same = true;
        for (auto &s : tree_specs()) {
            auto x = warm.get_xml(s.name, VIR_DOMAIN_SNAPSHOT_XML_SECURE);
            same = same && x && *x == cold_xml[s.name];
        }
        t.ok(same, "definitions parsed on demand format as a full parse does");
        t.eq(warm.parsed_count(), parsed_before, "get_xml keeps the XML it formatted, not the definition");
        // The second ask is the kept text: it needs no file any more. (The
        // directory moves, not the file: a file's rename would change its
        // stamp, and the index test below counts on the stamps.)
        std::filesystem::rename(dir, dir + ".away");
        auto kept = warm.get_xml("g", VIR_DOMAIN_SNAPSHOT_XML_SECURE);
        auto other_flags = warm.get_xml("g", 0);
        std::filesystem::rename(dir + ".away", dir);
        t.ok(kept && *kept == cold_xml["g"], "the XML asked for again comes from memory");
        t.ok(!other_flags, "the other flavour (no SECURE) was not asked for yet: it needs the file");
        auto def = warm.find("g");
        t.ok(def && warm.parsed_count() == parsed_before + 1, "find parses and keeps the definition");
    }

    // A file rewritten behind the index's back is parsed again.
    {
        std::string d = file_text(dir + "/d.xml");
        size_t at = d.find("<state>");
        d.insert(at, "<description>edited</description>\n  ");
        auto st = file::write_atomic(dir + "/d.xml", d);
        SnapshotList list;
        auto r = list.load(layout, dom, uuid());
        auto def = list.find("d");
        t.ok(st && r && r->from_index == 6 && def && (*def)->description == "edited",
             "a changed file is parsed, the others come from the index");
    }

    // A lost parent: the tree makes roots, the index keeps what the files say.
    {
        std::filesystem::rename(dir + "/b.xml", layout.root() + "/b.xml.away");
        for (int round = 0; round < 2; round++) {
            SnapshotList list;
            auto r = list.load(layout, dom, uuid());
            auto p = list.parent_name("c");
            t.ok(r && r->loaded == 6 && r->files.inconsistent_relations && !p && !list.has_current() &&
                     r->from_index == 6,
                 "missing parent: orphans become roots, current cleared (round " + std::to_string(round) + ")");
        }
        std::filesystem::rename(layout.root() + "/b.xml.away", dir + "/b.xml");
        SnapshotList list;
        auto r = list.load(layout, dom, uuid());
        auto p = list.parent_name("c");
        t.ok(r && !r->files.inconsistent_relations && p && *p == "b" &&
                 list.current_name() == std::optional<std::string>("e"),
             "the parent back: relations and current as the files say");
    }

    // Two files naming one snapshot: the first read wins, with or without the index.
    {
        std::filesystem::copy_file(dir + "/e.xml", dir + "/e2.xml");
        for (int round = 0; round < 2; round++) {
            SnapshotList list;
            auto r = list.load(layout, dom, uuid());
            t.ok(r && r->loaded == 7 && r->files.skipped.size() == 1 &&
                     r->files.skipped[0].path == dir + "/e2.xml",
                 "duplicate name skipped (round " + std::to_string(round) + ")");
        }
        std::filesystem::remove(dir + "/e2.xml");
    }

    // An index that is not ours, or torn, only costs the parsing.
    for (const char *junk : {"garbage\n", "virtsnap-snapshot-index 1\na.xml\t1\t2", ""}) {
        auto st = file::write_atomic(index, junk);
        SnapshotList list;
        auto r = list.load(layout, dom, uuid());
        auto again = file::read(index, 1 << 20);
        t.ok(st && r && r->loaded == 7 && r->from_index == 0 && again &&
                 again->rfind("virtsnap-snapshot-index 1\n", 0) == 0,
             "unusable index ignored and rewritten");
    }

    // Undefine's remove_all takes the index along.
    {
        SnapshotList list;
        auto r = list.load(layout, dom, uuid());
        auto gone = list.remove_all();
        t.ok(r && gone && !file::exists(index) && !file::exists(dir), "remove_all removes the index too");
    }
}

void test_bulk(Tap &t) {
    // tmpfs when available: the test measures the list, not the disk's fsync.
    std::string base = file::exists("/dev/shm") ? "/dev/shm" : std::string();
    std::string dir;
    if (!base.empty()) {
        std::string templ = base + "/virtsnap-snaplist-bulk-XXXXXX";
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (mkdtemp(buf.data())) dir = buf.data();
    }
    if (dir.empty()) dir = test::temp_dir("snaplist-bulk");
    auto layout = StateLayout::embedded(dir);
    const int n = 10000;
    SnapshotList list;
    auto l = list.load(*layout, "bulk", uuid());
    auto proto = parse({"proto", "", "running", 0});
    auto start = std::chrono::steady_clock::now();
    bool ok = l.has_value();
    // Branchy: each snapshot's parent is the one created i/2 steps back.
    for (int i = 0; i < n && ok; i++) {
        auto def = std::make_unique<SnapshotDef>(*proto);
        def->name = "s" + std::to_string(i);
        def->parent_name = i == 0 ? "" : "s" + std::to_string(i / 2);
        def->creation_time = 100000 + i;
        auto r = list.redefine(std::move(def), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE |
                                                   (i == n - 1 ? unsigned(VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT) : 0u));
        if (!r) {
            ok = false;
            t.note(r.error().message());
        }
    }
    auto mid = std::chrono::steady_clock::now();
    t.ok(ok && list.count() == size_t(n), "10000 snapshots redefined");
    SnapshotList again;
    auto r = again.load(*layout, "bulk", uuid());
    auto end = std::chrono::steady_clock::now();
    t.ok(r && again.count() == size_t(n) && again.current_name() == std::optional<std::string>("s9999"),
         "10000 snapshots reloaded with current");
    auto q0 = std::chrono::steady_clock::now();
    bool lookups = true;
    for (int i = 0; i < n; i++) {
        auto f = again.find("s" + std::to_string(i));
        auto p = again.num_children("s" + std::to_string(i), 0);
        int expected = 0;
        for (int j : {2 * i, 2 * i + 1}) expected += (j >= 1 && j < n) ? 1 : 0;
        lookups = lookups && f && p && *p == expected;
    }
    auto all = again.list_all(VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL);
    auto num = again.num(0);
    auto q1 = std::chrono::steady_clock::now();
    t.ok(all && all->size() == size_t(n) && (*all)[0] == "s0" && num && *num == n, "bulk listing");
    t.ok(lookups, "bulk lookups and child counts");
    auto ms = [](auto a, auto b) { return std::to_string(std::chrono::duration<double, std::milli>(b - a).count()); };
    t.note("redefine 10000: " + ms(start, mid) + " ms; load 10000: " + ms(mid, end) + " ms; 20000 lookups + list: " +
           ms(q0, q1) + " ms");
    if (dir.rfind("/dev/shm/", 0) == 0 && !std::getenv("VIRTSNAP_TEST_KEEP")) std::filesystem::remove_all(dir);
}

}  // namespace

int main() {
    Tap t;
    std::string dir = test::temp_dir("snaplist");
    auto layout = StateLayout::embedded(dir);
    if (!layout) return t.ok(false, "layout"), t.finish();
    const std::string snapdir = dir + "/lib/qemu/snapshot/dom1";

    // ---- the fixed tree ----
    SnapshotList list;
    auto loaded = list.load(*layout, "dom1", uuid());
    t.ok(loaded && loaded->loaded == 0, "load of a missing directory is empty");
    build_tree(t, list, "built");
    // A redefine keeps the snapshot's place in the tree, not its parsed
    // definition (~24 KiB each with the <domain>, when thousands are imported).
    t.eq(list.parsed_count(), size_t(0), "redefined definitions are not kept in memory");
    test_queries(t, list, "built");
    test_flag_checks(t, list);
    test_redefine_errors(t, list);

    // ---- metadata files ----
    t.eq_file(file_text(snapdir + "/e.xml"), test::source_dir() + "/snapshotlistdata/metadata-e.xml",
              "metadata file of the current snapshot matches libvirt's layout");
    t.ok(claims_current(snapdir + "/e.xml") && !claims_current(snapdir + "/d.xml"),
         "only the current snapshot's file claims current");
    auto xml = list.get_xml("e", 0);
    t.ok(xml && xml->find("<active>") == std::string::npos && xml->find("<domainsnapshot>") == 0 &&
             xml->find("<name>e</name>") != std::string::npos,
         "get_xml is the public format");
    auto secure = list.get_xml("e", VIR_DOMAIN_SNAPSHOT_XML_SECURE);
    t.ok(secure.has_value(), "get_xml with SECURE");

    // ---- reload gives the same tree ----
    {
        SnapshotList again;
        auto r = again.load(*layout, "dom1", uuid());
        t.ok(r && r->loaded == 7 && r->files.skipped.empty(), "reload reads 7 files, skips none");
        test_queries(t, again, "reloaded");
        // Redefined definitions were read back from their files on demand.
        bool same = true;
        for (auto &s : tree_specs()) {
            auto mine = list.get_xml(s.name, VIR_DOMAIN_SNAPSHOT_XML_SECURE);
            auto theirs = again.get_xml(s.name, VIR_DOMAIN_SNAPSHOT_XML_SECURE);
            same = same && mine && theirs && *mine == *theirs;
        }
        t.ok(same, "a redefined snapshot's XML, read back from its file, is the reloaded one");
    }

    // ---- replace by redefine keeps children, CURRENT moves current ----
    {
        SnapSpec d2{"d", "a", "running", 1003};
        d2.description = "moved below a";
        auto r = list.redefine(parse(d2), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT);
        t.ok(r.has_value(), "redefine replaces d with a new parent and CURRENT");
        t.eq(join(list.list_all_children("d", 0)), std::string("e"), "replaced d keeps child e");
        t.eq(join(list.list_all_children("a", 0)), std::string("d f b"), "d is now a child of a, first");
        t.eq(list.current_name().value_or("-"), std::string("d"), "d is current");
        t.ok(claims_current(snapdir + "/d.xml") && !claims_current(snapdir + "/e.xml"), "files follow current");
        auto def = list.find("d");
        t.ok(def && (*def)->description == "moved below a" && (*def)->disks.size() == 1,
             "replaced definition stored and aligned");
        auto dxml = list.get_xml("d", VIR_DOMAIN_SNAPSHOT_XML_SECURE);
        t.ok(dxml && dxml->find("<description>moved below a</description>") != std::string::npos &&
                 dxml->find("<name>a</name>") != std::string::npos,
             "get_xml after the redefine is the new definition's");
        // A redefine without <domain> keeps the replaced one's domain.
        SnapSpec nodom{"d", "a", "running", 1003};
        nodom.with_domain = false;
        auto r2 = list.redefine(parse(nodom), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
        auto def2 = list.find("d");
        t.ok(r2 && def2 && (*def2)->domain && list.current_name() == std::optional<std::string>("d"),
             "redefine without domain keeps the old domain and current");
        // Put d back below b and e current again.
        auto r3 = list.redefine(parse({"d", "b", "running", 1003}), VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
        auto r4 = list.set_current("e");
        t.ok(r3 && r4 && list.current_name() == std::optional<std::string>("e") &&
                 claims_current(snapdir + "/e.xml") && !claims_current(snapdir + "/d.xml"),
             "set_current switches files");
        expect_error(t, list.set_current("zz"), VIR_ERR_NO_DOMAIN_SNAPSHOT, VIR_FROM_QEMU,
                     "no domain snapshot with matching name 'zz'", "set_current unknown");
    }

    test_delete(t, *layout);
    test_crash_current(t, *layout);
    test_add_created(t, *layout);
    test_libvirt_files(t, *layout);
    test_index_format(t);
    test_index(t, *layout);
    test_bulk(t);
    return t.finish();
}
