// checkpointlisttest.cc - CheckpointList: queries, list flags, redefine rules,
// metadata files, reload and delete re-parenting, and a metadata file written
// by libvirt loaded where it lies.

#include "conf/checkpoint_list.hh"
#include "tap.hh"
#include "util/file.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>

using namespace virtsnap;
using namespace virtsnap::conf;
using virtsnap::test::Tap;

namespace {

const char *kUuid = "0b2d6a8e-4f1c-4e2a-9d57-3f6c1a2b9e01";

std::string cp_xml(const std::string &name, const std::string &parent, long long time,
                   const char *uuid = kUuid) {
    std::string x = "<domaincheckpoint>\n  <name>" + name + "</name>\n";
    if (!parent.empty()) x += "  <parent>\n    <name>" + parent + "</name>\n  </parent>\n";
    x += "  <creationTime>" + std::to_string(time) + "</creationTime>\n";
    x += "  <disks>\n    <disk name='vda' checkpoint='bitmap' bitmap='" + name + "'/>\n  </disks>\n";
    x += std::string("  <domain type='kvm'>\n    <name>dom1</name>\n    <uuid>") + uuid +
         "</uuid>\n    <memory unit='KiB'>1048576</memory>\n    <vcpu placement='static'>1</vcpu>\n"
         "    <os>\n      <type arch='x86_64' machine='pc'>hvm</type>\n    </os>\n    <devices>\n"
         "      <disk type='file' device='disk'>\n        <driver name='qemu' type='qcow2'/>\n"
         "        <source file='/var/lib/images/dom1.qcow2'/>\n        <target dev='vda' bus='virtio'/>\n"
         "      </disk>\n    </devices>\n  </domain>\n</domaincheckpoint>\n";
    return x;
}

std::unique_ptr<CheckpointDef> parse(const std::string &name, const std::string &parent, long long time,
                                     const char *uuid = kUuid) {
    auto r = CheckpointDef::parse_string(cp_xml(name, parent, time, uuid), kCheckpointParseRedefine);
    if (!r) {
        std::fprintf(stderr, "parse of %s failed: %s\n", name.c_str(), r.error().message().c_str());
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
    return r ? join(*r) : "ERROR: " + r.error().message();
}

template <typename T>
bool expect_error(Tap &t, const Result<T> &r, virErrorNumber code, virErrorDomain domain, const std::string &detail,
                  const std::string &name) {
    if (r) return t.ok(false, name, "succeeded");
    return t.ok(r.error().code == code && r.error().domain == domain && r.error().detail == detail, name,
                "got: " + std::to_string(r.error().code) + "/" + std::to_string(r.error().domain) + " " +
                    r.error().detail);
}

std::string parent_in_file(const std::string &path) {
    auto def = CheckpointDef::parse_metadata_file(test::read_text(path));
    if (!def) return "ERROR";
    return (*def)->parent_name.value_or("");
}

// a ── b ── c,  a ── d,  e (root); created a b c e d. Siblings list newest
// first, as libvirt's.
void build(Tap &t, CheckpointList &list, const std::string &tag) {
    bool ok = true;
    for (auto [n, p, tm] : std::vector<std::tuple<std::string, std::string, long long>>{
             {"a", "", 1}, {"b", "a", 2}, {"c", "b", 3}, {"e", "", 4}, {"d", "a", 5}}) {
        auto r = list.redefine(parse(n, p, tm));
        if (!r) ok = false, t.note(n + ": " + r.error().message());
    }
    t.ok(ok, tag + ": tree built by redefine");
}

void queries(Tap &t, const CheckpointList &list, const std::string &tag) {
    t.eq(list.count(), size_t(5), tag + ": count");
    const std::vector<std::pair<unsigned, std::string>> cases = {
        {0, "a b c e d"},
        {VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL, "e a d b c"},
        {VIR_DOMAIN_CHECKPOINT_LIST_ROOTS, "e a"},
        {VIR_DOMAIN_CHECKPOINT_LIST_LEAVES, "c e d"},
        {VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES, "a b"},
        {VIR_DOMAIN_CHECKPOINT_LIST_LEAVES | VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES, ""},
        {VIR_DOMAIN_CHECKPOINT_LIST_ROOTS | VIR_DOMAIN_CHECKPOINT_LIST_LEAVES, "e"},
        {VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL | VIR_DOMAIN_CHECKPOINT_LIST_LEAVES, "e d c"},
    };
    for (auto &[flags, expected] : cases) {
        char name[64];
        std::snprintf(name, sizeof name, ": list_all(0x%x)", flags);
        t.eq(join(list.list_all(flags)), expected, tag + name);
        auto n = list.num(flags);
        int words = expected.empty() ? 0 : int(std::count(expected.begin(), expected.end(), ' ') + 1);
        t.eq(n ? *n : -1, words, tag + name + " count");
    }
    const std::vector<std::tuple<std::string, unsigned, std::string>> children = {
        {"a", 0, "d b"},
        {"a", VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS, "d b c"},
        {"a", VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS | VIR_DOMAIN_CHECKPOINT_LIST_LEAVES, "d c"},
        {"a", VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES, "b"},
        {"b", VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS | VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL, "c"},
        {"e", 0, ""},
    };
    for (auto &[from, flags, expected] : children) {
        char name[64];
        std::snprintf(name, sizeof name, ": list_all_children(%s, 0x%x)", from.c_str(), flags);
        t.eq(join(list.list_all_children(from, flags)), expected, tag + name);
        auto n = list.num_children(from, flags);
        int words = expected.empty() ? 0 : int(std::count(expected.begin(), expected.end(), ' ') + 1);
        t.eq(n ? *n : -1, words, tag + name + " count");
    }
    auto p = list.parent("c");
    t.ok(p && (*p)->name == std::optional<std::string>("b"), tag + ": parent(c) = b");
    expect_error(t, list.parent("a"), VIR_ERR_NO_DOMAIN_CHECKPOINT, VIR_FROM_QEMU,
                 "checkpoint 'a' does not have a parent", tag + ": root has no parent (103)");
    expect_error(t, list.find("zz"), VIR_ERR_NO_DOMAIN_CHECKPOINT, VIR_FROM_QEMU,
                 "no domain checkpoint with matching name 'zz'", tag + ": unknown checkpoint");
}

// libvirt's checkpoint metadata file is the SECURE format (its loader parses
// it as a redefinition), so its out->out fixture redefine.xml is what libvirt
// 9.0 writes for checkpoint c1. The checkpoint directory links to the fixture
// files, so the loader reads them in place (they are never copied).
void test_libvirt_files(Tap &t) {
    std::string shared = test::shared_dir();
    std::string fixtures = shared + "/fixtures/libvirt/qemudomaincheckpointxml2xmlout";
    if (shared.empty() || !file::exists(fixtures + "/redefine.xml")) {
        t.skip("libvirt checkpoint metadata file", "shared fixtures absent");
        return;
    }
    const std::string domain = "QEMUGuest1";
    const Uuid guest_uuid = *Uuid::parse("c7a5fdbd-edaf-9455-926a-d65c16db1809");
    std::string root = test::temp_dir("cplist-libvirt");
    auto layout = StateLayout::embedded(root);
    if (!t.ok(layout.has_value(), "libvirt files: layout")) return;
    const std::string dir = root + "/lib/qemu/checkpoint/" + domain;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::filesystem::create_symlink(fixtures + "/redefine.xml", dir + "/c1.xml", ec);
    // libvirt's loader validates against the schema too, which refuses <active>.
    if (!ec) std::filesystem::create_symlink(fixtures + "/internal-active-invalid.xml", dir + "/1525889631.xml", ec);
    if (!t.ok(!ec, "libvirt files: linked into the checkpoint directory", ec.message())) return;
    const std::string original = test::read_text(fixtures + "/redefine.xml");

    CheckpointList list;
    auto r = list.load(*layout, domain, guest_uuid);
    t.ok(r && r->loaded == 1 && list.count() == 1 && list.contains("c1"), "libvirt redefine.xml loads in place as c1",
         r ? "" : r.error().message());
    if (!r) return;
    t.ok(r->files.skipped.size() == 1 && r->files.skipped[0].path == dir + "/1525889631.xml" &&
             r->files.skipped[0].error.code == VIR_ERR_XML_INVALID_SCHEMA,
         "libvirt internal-active-invalid.xml is reported and skipped, as libvirt's loader does",
         r->files.skipped.empty() ? "nothing skipped" : r->files.skipped[0].error.message());
    auto def = list.find("c1");
    if (!t.ok(def.has_value(), "libvirt files: c1 found")) return;
    const CheckpointDef &c1 = **def;
    std::string disks;
    for (const auto &d : c1.disks)
        disks += (disks.empty() ? "" : " ") + d.name + "=" +
                 (d.type == CheckpointDiskType::Bitmap ? "bitmap:" + d.bitmap.value_or("") : std::string("no"));
    t.eq(disks, std::string("hda=no hdc=no vda=bitmap:c1 vdb=bitmap:c1"), "libvirt files: c1's disks");
    t.ok(c1.creation_time == 1553647812 && !c1.parent_name && c1.dom && c1.dom->uuid == guest_uuid &&
             c1.dom->name == domain,
         "libvirt files: creation time, no parent, the domain it was taken of");
    auto xml = list.get_xml("c1", 0);
    t.eq_text(xml ? *xml : xml.error().message(), original, "libvirt files: c1 formats as libvirt wrote it");
    auto without = list.get_xml("c1", VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN);
    t.ok(without && without->find("<domain ") == std::string::npos &&
             without->find("<name>c1</name>") != std::string::npos,
         "libvirt files: NO_DOMAIN drops the domain");
    t.ok(std::filesystem::is_symlink(dir + "/c1.xml") && test::read_text(fixtures + "/redefine.xml") == original,
         "libvirt files: loading wrote nothing");
}

}  // namespace

int main() {
    Tap t;
    std::string root = test::temp_dir("cplist");
    auto layout = StateLayout::embedded(root);
    const Uuid uuid = *Uuid::parse(kUuid);
    const std::string dir = root + "/lib/qemu/checkpoint/dom1";

    CheckpointList list;
    auto l = list.load(*layout, "dom1", uuid);
    t.ok(l && l->loaded == 0, "empty load");
    build(t, list, "built");
    queries(t, list, "built");

    // Flags and redefine errors.
    expect_error(t, list.list_all(VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS << 8), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x100) in function qemuDomainListAllCheckpoints", "list_all unknown flag");
    expect_error(t, list.list_all_children("a", 1u << 6), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x40) in function qemuDomainCheckpointListAllChildren", "children unknown flag");
    expect_error(t, list.get_xml("a", 8), VIR_ERR_INVALID_ARG, VIR_FROM_QEMU,
                 "unsupported flags (0x8) in function qemuCheckpointGetXMLDesc", "get_xml unknown flag");
    expect_error(t, list.redefine(parse("x", "x", 9)), VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                 "cannot set moment x as its own parent", "redefine own parent");
    expect_error(t, list.redefine(parse("x", "nope", 9)), VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                 "parent nope for moment x not found", "redefine missing parent");
    expect_error(t, list.redefine(parse("a", "c", 1)), VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN,
                 "parent b would create cycle to a", "redefine cycle");
    expect_error(t, list.redefine(parse("x", "", 9, "11111111-2222-3333-4444-555555555555")), VIR_ERR_INVALID_ARG,
                 VIR_FROM_DOMAIN_CHECKPOINT, std::string("definition for checkpoint x must use uuid ") + kUuid,
                 "redefine uuid mismatch");
    t.ok(!list.contains("x") && list.count() == 5, "failed redefines changed nothing");

    // Files and XML.
    std::string text = test::read_text(dir + "/c.xml");
    t.ok(text.rfind("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.", 0) == 0 &&
             text.find("virsh checkpoint-edit") != std::string::npos &&
             text.find("<name>b</name>") != std::string::npos,
         "metadata file has libvirt's warning and the parent");
    auto xml = list.get_xml("c", VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN);
    t.ok(xml && xml->find("<domain type") == std::string::npos && xml->find("<name>c</name>") != std::string::npos,
         "get_xml NO_DOMAIN");
    auto sized = list.get_xml("c", VIR_DOMAIN_CHECKPOINT_XML_SIZE, [](CheckpointDef &d) -> Status {
        for (auto &disk : d.disks) disk.size = 1024;
        return ok();
    });
    t.ok(sized && sized->find("size='1024'") != std::string::npos, "get_xml SIZE uses the filler");

    // Reload.
    {
        CheckpointList again;
        auto r = again.load(*layout, "dom1", uuid);
        t.ok(r && r->loaded == 5 && r->files.skipped.empty(), "reload reads 5 files");
        queries(t, again, "reloaded");
    }

    // Replace keeps children.
    auto rep = list.redefine(parse("b", "", 2));
    t.ok(rep && join(list.list_all(VIR_DOMAIN_CHECKPOINT_LIST_ROOTS)) == "b e a" &&
             join(list.list_all_children("b", 0)) == "c",
         "redefine replaces b as a root, keeping child c");
    auto back = list.redefine(parse("b", "a", 2));
    t.ok(back && join(list.list_all_children("a", 0)) == "b d", "b back below a, first");

    // add_created.
    auto added = list.add_created(parse("f", "c", 6));
    t.ok(added && join(list.list_all_children("c", 0)) == "f" && file::exists(dir + "/f.xml"), "add_created");
    expect_error(t, list.add_created(parse("f", "", 7)), VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN,
                 "domain moment f already exists", "add_created duplicate");

    // Deletes: middle (reparent), CHILDREN_ONLY, CHILDREN.
    auto r1 = list.remove_metadata("b", MomentRemoveMode::Single);
    t.ok(r1 && r1->removed.size() == 1 && join(r1->reparented) == "c", "delete b reparents c");
    t.eq(parent_in_file(dir + "/c.xml"), std::string("a"), "c's file names a");
    t.ok(!file::exists(dir + "/b.xml") && join(list.list_all_children("a", 0)) == "c d", "b gone, a has c d (creation order)");
    auto r2 = list.remove_metadata("a", MomentRemoveMode::ChildrenOnly);
    std::vector<std::string> gone;
    if (r2) for (auto &p : r2->removed) gone.push_back(p.first);
    t.eq(join(gone), std::string("c f d"), "CHILDREN_ONLY removes a's descendants");
    t.ok(list.count() == 2 && !file::exists(dir + "/f.xml") && file::exists(dir + "/a.xml"), "a and e remain");
    auto r3 = list.remove_metadata("a", MomentRemoveMode::WithChildren);
    t.ok(r3 && r3->removed.size() == 1 && list.count() == 1, "CHILDREN removes a");
    expect_error(t, list.remove_metadata("zz", MomentRemoveMode::Single), VIR_ERR_NO_DOMAIN_CHECKPOINT,
                 VIR_FROM_QEMU, "no domain checkpoint with matching name 'zz'", "delete unknown");
    {
        CheckpointList again;
        auto r = again.load(*layout, "dom1", uuid);
        t.ok(r && join(again.list_all(0)) == "e", "reload after deletes");
    }
    auto all = list.remove_all();
    t.ok(all && list.count() == 0 && !file::exists(dir), "remove_all");
    test_libvirt_files(t);
    return t.finish();
}
