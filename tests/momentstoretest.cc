// momentstoretest.cc - unit tests for the state layout, the moment metadata
// store and the domain config store, on real temporary directories: atomic
// writes, names that try to escape, corrupt / unreadable / oversized files,
// libvirt's current and relation rules at load, and a 10,000-file load.

#include "tap.hh"

#include "conf/domain_config_store.hh"
#include "conf/moment_store.hh"
#include "conf/moment_tree.hh"
#include "conf/state_layout.hh"
#include "util/file.hh"
#include "util/xml_doc.hh"
#include "util/xml_file_warning.hh"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

using namespace virtsnap;

namespace {

// What a test payload keeps of a snapshot file.
struct Meta {
    std::string name;
    std::string parent;
};
using Tree = MomentTree<std::unique_ptr<Meta>>;

// Reads name, parent and <active> of libvirt's internal snapshot format, the
// way the real snapshot parser will (it is written elsewhere).
Result<MomentStore::Parsed<std::unique_ptr<Meta>>> parse_snapshot(const std::string &path, std::string_view text) {
    xml::Document doc = TRY(xml::parse_with_root(text, path, "domainsnapshot", VIR_FROM_DOMAIN_SNAPSHOT));
    auto name = doc.root().child_text("name");
    if (!name || name->empty())
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "a redefined snapshot must have a name");
    MomentStore::Parsed<std::unique_ptr<Meta>> out;
    out.info.name = *name;
    if (auto p = doc.root().child("parent")) out.info.parent = p.child_text("name").value_or("");
    out.info.claims_current = doc.root().child_text("active").value_or("0") != "0";
    out.payload = std::make_unique<Meta>(Meta{out.info.name, out.info.parent});
    return out;
}

std::string snapshot_xml(const std::string &name, const std::string &parent, bool active) {
    std::string x = xml::file_warning("snapshot-edit", name);
    x += "<domainsnapshot>\n  <name>" + name + "</name>\n  <state>shutoff</state>\n";
    if (!parent.empty()) x += "  <parent>\n    <name>" + parent + "</name>\n  </parent>\n";
    x += "  <creationTime>1700000000</creationTime>\n";
    x += std::string("  <active>") + (active ? "1" : "0") + "</active>\n</domainsnapshot>\n";
    return x;
}

// Plain writes for fixtures: what another program (libvirt) left behind.
void put(const std::string &path, const std::string &text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
}

std::string names(const MomentTreeCore &t, const std::vector<MomentId> &ids) {
    std::string out;
    for (MomentId id : ids) out += (out.empty() ? "" : " ") + t.name(id);
    return out;
}

void test_layout(test::Tap &tap) {
    auto emb = StateLayout::embedded("/srv/vs/");
    tap.ok(bool(emb), "embedded layout from an absolute root");
    if (!emb) return;
    const StateLayout &l = *emb;
    tap.ok(l.is_embedded() && l.root() == "/srv/vs", "trailing slash dropped");
    tap.eq(l.config_dir(), std::string("/srv/vs/etc/qemu"), "embedded config dir");
    tap.eq(*l.domain_config("vm1"), std::string("/srv/vs/etc/qemu/vm1.xml"), "embedded domain config");
    tap.eq(*l.autostart_link("vm1"), std::string("/srv/vs/etc/qemu/autostart/vm1.xml"), "embedded autostart link");
    tap.eq(*l.snapshot_dir("vm1"), std::string("/srv/vs/lib/qemu/snapshot/vm1"), "embedded snapshot dir");
    tap.eq(*l.snapshot_file("vm1", "s1"), std::string("/srv/vs/lib/qemu/snapshot/vm1/s1.xml"),
           "embedded snapshot file");
    tap.eq(*l.checkpoint_file("vm1", "c1"), std::string("/srv/vs/lib/qemu/checkpoint/vm1/c1.xml"),
           "embedded checkpoint file");
    tap.eq(*l.status_file("vm1"), std::string("/srv/vs/run/qemu/vm1.xml"), "embedded status file");
    tap.eq(*l.domain_pid_file("vm1"), std::string("/srv/vs/run/qemu/vm1.pid"), "embedded domain pid file");
    tap.eq(*l.monitor_socket("vm1"), std::string("/srv/vs/run/qemu/vm1.monitor"), "embedded monitor socket");
    tap.eq(*l.agent_socket("vm1"), std::string("/srv/vs/run/qemu/vm1.agent"), "embedded agent socket");
    tap.eq(*l.log_file("vm1"), std::string("/srv/vs/log/qemu/vm1.log"), "embedded log file");
    tap.eq(l.journal_dir(), std::string("/srv/vs/lib/qemu/journal"), "embedded journal dir");
    tap.eq(*l.managed_save_file("vm1"), std::string("/srv/vs/lib/qemu/save/vm1.save"), "embedded save file");
    tap.eq(l.daemon_socket(), std::string("/srv/vs/run/virtsnapd-sock"), "embedded daemon socket");
    tap.eq(l.daemon_socket_ro(), std::string("/srv/vs/run/virtsnapd-sock-ro"), "embedded read-only socket");
    tap.eq(l.pid_file(), std::string("/srv/vs/run/virtsnapd.pid"), "embedded pid file");

    StateLayout s = StateLayout::system();
    tap.ok(!s.is_embedded(), "system layout is not embedded");
    tap.eq(*s.domain_config("vm1"), std::string("/etc/virtsnap/qemu/vm1.xml"), "system domain config");
    tap.eq(*s.snapshot_file("vm1", "s1"), std::string("/var/lib/virtsnap/qemu/snapshot/vm1/s1.xml"),
           "system snapshot file");
    tap.eq(*s.checkpoint_dir("vm1"), std::string("/var/lib/virtsnap/qemu/checkpoint/vm1"), "system checkpoint dir");
    tap.eq(*s.status_file("vm1"), std::string("/run/virtsnap/qemu/vm1.xml"), "system status file");
    tap.eq(*s.log_file("vm1"), std::string("/var/log/virtsnap/qemu/vm1.log"), "system log file");
    tap.eq(s.journal_dir(), std::string("/var/lib/virtsnap/qemu/journal"), "system journal dir");
    tap.eq(s.save_dir(), std::string("/var/lib/virtsnap/qemu/save"), "system save dir");
    tap.eq(s.daemon_socket(), std::string("/run/virtsnap/virtsnapd-sock"), "system daemon socket");
    tap.eq(s.daemon_socket_ro(), std::string("/run/virtsnap/virtsnapd-sock-ro"), "system read-only socket");
    tap.eq(s.pid_file(), std::string("/run/virtsnapd.pid"), "system pid file");

    tap.ok(!StateLayout::embedded("relative/dir") && !StateLayout::embedded("") && !StateLayout::embedded("/"),
           "relative, empty and / roots refused");
    for (const char *bad : {"../x", "a/b", ".", "", "..", "/abs"}) {
        auto d = l.domain_config(bad);
        auto sn = l.snapshot_file("vm1", bad);
        auto sd = l.snapshot_file(bad, "s1");
        auto lg = l.log_file(bad);
        tap.ok(!d && !sn && !sd && !lg && d.error().code == VIR_ERR_INVALID_ARG,
               "name '" + std::string(bad) + "' refused in every path");
    }
    tap.ok(bool(l.domain_config("..x")) && bool(l.snapshot_file("vm1", "a..b")), "dots inside a name are fine");
    tap.ok(!l.monitor_socket(std::string(120, 'n')), "socket path longer than sun_path refused");
}

void test_store_writes(test::Tap &tap, const std::string &root) {
    auto layout = *StateLayout::embedded(root);
    tap.ok(bool(layout.create_dirs()), "create_dirs");
    struct stat st;
    tap.ok(::stat(layout.journal_dir().c_str(), &st) == 0 && (st.st_mode & 0777) == 0700, "journal dir is private");
    auto opened = MomentStore::open(layout, MomentKind::Snapshot, "vm1");
    tap.ok(bool(opened), "open store");
    const MomentStore &store = *opened;
    tap.eq(store.dir(), root + "/lib/qemu/snapshot/vm1", "store dir");

    tap.ok(bool(store.save("s1", "first")), "save creates the domain directory and file");
    tap.eq(test::read_text(root + "/lib/qemu/snapshot/vm1/s1.xml"), std::string("first"), "content written");
    tap.ok(bool(store.save("s1", "second, longer content")), "save again");
    tap.eq(test::read_text(root + "/lib/qemu/snapshot/vm1/s1.xml"), std::string("second, longer content"),
           "content replaced");
    tap.ok(!file::exists(root + "/lib/qemu/snapshot/vm1/s1.xml.new"), "no temporary left behind");
    tap.ok(::stat((root + "/lib/qemu/snapshot/vm1/s1.xml").c_str(), &st) == 0 && (st.st_mode & 0777) == 0600,
           "metadata file mode 0600");

    for (const char *bad : {"../x", "a/b", ".", "", ".."}) {
        auto r = store.save(bad, "evil");
        tap.ok(!r && r.error().code == VIR_ERR_INVALID_ARG && r.error().domain == VIR_FROM_DOMAIN_SNAPSHOT,
               "save refuses name '" + std::string(bad) + "'");
        tap.ok(!store.remove(bad), "remove refuses name '" + std::string(bad) + "'");
    }
    tap.ok(!file::exists(root + "/lib/qemu/snapshot/x.xml") && !file::exists(root + "/lib/qemu/snapshot/vm1/a"),
           "nothing written outside the directory");
    tap.ok(!MomentStore::open(layout, MomentKind::Snapshot, "../etc"), "domain name cannot escape either");

    tap.ok(bool(store.remove("s1")) && !file::exists(root + "/lib/qemu/snapshot/vm1/s1.xml"), "remove");
    tap.ok(bool(store.remove("s1")), "removing a missing file is fine");

    // Rename moves the directory; the target must not exist.
    tap.ok(bool(store.save("s2", "x")), "save before rename");
    MomentStore moving = store;
    tap.ok(bool(moving.rename_domain(layout, "vm2")), "rename domain directory");
    tap.ok(file::exists(root + "/lib/qemu/snapshot/vm2/s2.xml") && !file::exists(store.dir()),
           "files moved to the new name");
    tap.ok(moving.domain() == "vm2" && bool(moving.save("s3", "y")), "store follows the rename");
    auto other = *MomentStore::open(layout, MomentKind::Snapshot, "vm3");
    tap.ok(bool(other.save("o", "z")), "another domain's moments");
    auto clash = moving.rename_domain(layout, "vm3");
    tap.ok(!clash && file::exists(root + "/lib/qemu/snapshot/vm3/o.xml") &&
               file::exists(root + "/lib/qemu/snapshot/vm2/s2.xml"),
           "rename onto an existing directory refused, nothing merged");

    // remove_all: every file and the directory.
    put(moving.dir() + "/stray.xml.new", "partial");
    tap.ok(bool(moving.remove_all()) && !file::exists(moving.dir()), "remove_all removes files and directory");
    tap.ok(bool(moving.remove_all()), "remove_all on a missing directory is fine");

    auto cps = *MomentStore::open(layout, MomentKind::Checkpoint, "vm1");
    tap.eq(cps.dir(), root + "/lib/qemu/checkpoint/vm1", "checkpoint store dir");
    auto bad_cp = cps.save("../x", "y");
    tap.ok(!bad_cp && bad_cp.error().domain == VIR_FROM_DOMAIN_CHECKPOINT, "checkpoint errors use their domain");
}

void test_store_load(test::Tap &tap, const std::string &root) {
    auto layout = *StateLayout::embedded(root);
    auto store = *MomentStore::open(layout, MomentKind::Snapshot, "vm1");
    const std::string dir = store.dir();

    Tree empty_tree;
    auto none = store.load_into<std::unique_ptr<Meta>>(empty_tree, parse_snapshot);
    tap.ok(none && none->loaded.empty() && none->skipped.empty() && empty_tree.empty(),
           "missing directory loads nothing");

    tap.ok(bool(store.save("root", snapshot_xml("root", "", false))), "save root");
    tap.ok(bool(store.save("mid", snapshot_xml("mid", "root", false))), "save mid");
    tap.ok(bool(store.save("leaf", snapshot_xml("leaf", "mid", true))), "save leaf (current)");
    tap.ok(bool(store.save("side", snapshot_xml("side", "root", false))), "save side");
    put(dir + "/corrupt.xml", "<domainsnapshot><name>corrupt</name>");
    put(dir + "/noname.xml", "<domainsnapshot><state>shutoff</state></domainsnapshot>");
    put(dir + "/wrongroot.xml", "<domain><name>x</name></domain>");
    put(dir + "/big.xml", "<domainsnapshot><name>big</name><description>" + std::string(1024 * 1024, 'x') +
                              "</description></domainsnapshot>");
    ::mkdir((dir + "/subdir.xml").c_str(), 0755);
    if (::symlink((dir + "/nowhere").c_str(), (dir + "/dangling.xml").c_str()) != 0) tap.note("symlink failed");
    put(dir + "/mid.xml.new", snapshot_xml("mid", "side", true));  // interrupted rewrite
    put(dir + "/zz-root-copy.xml", snapshot_xml("root", "", false));  // duplicate name
    bool unreadable = ::geteuid() != 0;
    if (unreadable) {
        put(dir + "/locked.xml", snapshot_xml("locked", "", false));
        ::chmod((dir + "/locked.xml").c_str(), 0);
    }

    Tree tree;
    auto report = store.load_into<std::unique_ptr<Meta>>(tree, parse_snapshot);
    tap.ok(bool(report), "load succeeds despite bad files");
    if (!report) return;
    tap.eq(tree.size(), size_t(4), "the four good snapshots loaded");
    tap.eq(names(tree, tree.topological()), std::string("root side mid leaf"), "topological order after load");
    tap.eq(tree.name(tree.parent(tree.find("leaf"))), std::string("mid"), "relations rebuilt from files");
    tap.eq(names(tree, tree.children(tree.find("root"))), std::string("side mid"), "children of root, the later first");
    tap.ok(tree.current() != kNoMoment && tree.name(tree.current()) == "leaf", "current from <active>");
    tap.ok(!report->inconsistent_relations && report->orphaned.empty(), "relations consistent");
    size_t expect_skipped = 7 + (unreadable ? 1 : 0);
    tap.eq(report->skipped.size(), expect_skipped, "every bad file reported");
    auto skipped = [&](const std::string &file) {
        for (const auto &s : report->skipped)
            if (s.path == dir + "/" + file) return true;
        return false;
    };
    tap.ok(skipped("corrupt.xml"), "malformed XML skipped");
    tap.ok(skipped("noname.xml"), "XML the parser refuses skipped");
    tap.ok(skipped("wrongroot.xml"), "wrong root element skipped");
    tap.ok(skipped("big.xml"), "file over 1 MiB skipped");
    tap.ok(skipped("subdir.xml"), "directory entry skipped");
    tap.ok(skipped("dangling.xml"), "dangling symlink skipped");
    tap.ok(skipped("zz-root-copy.xml"), "duplicate snapshot name skipped");
    for (const auto &s : report->skipped)
        if (s.path == dir + "/zz-root-copy.xml")
            tap.eq(s.error.message(), std::string("operation failed: domain moment root already exists"),
                   "duplicate reported with libvirt's wording");
    if (unreadable) tap.ok(skipped("locked.xml"), "unreadable file skipped");
    else tap.skip("unreadable file skipped", "running as root: permissions do not stop reads");
    tap.eq(report->ignored_temporaries.size(), size_t(1), "our .new temporary ignored");
    tap.eq(tree.payload(tree.find("mid"))->parent, std::string("root"), "the .new copy did not replace mid");
    tap.eq(report->loaded.size(), size_t(4), "loaded infos reported");
}

void test_load_rules(test::Tap &tap, const std::string &root) {
    auto layout = *StateLayout::embedded(root);
    auto store = *MomentStore::open(layout, MomentKind::Snapshot, "rules");
    // Two files claim current: the last one read (sorted: "b-cur" after "a-cur") wins.
    (void)store.save("a-cur", snapshot_xml("a-cur", "", true));
    (void)store.save("b-cur", snapshot_xml("b-cur", "a-cur", true));
    Tree t1;
    auto r1 = store.load_into<std::unique_ptr<Meta>>(t1, parse_snapshot);
    tap.ok(r1 && r1->current_claims == 2 && t1.name(t1.current()) == "b-cur",
           "two files claim current: the last one read wins");

    // A missing parent: the snapshot becomes a root and current is dropped.
    (void)store.save("orphan", snapshot_xml("orphan", "gone", false));
    Tree t2;
    auto r2 = store.load_into<std::unique_ptr<Meta>>(t2, parse_snapshot);
    tap.ok(r2 && r2->inconsistent_relations, "missing parent makes relations inconsistent");
    tap.ok(r2 && t2.current() == kNoMoment, "current reset on inconsistent relations");
    tap.ok(r2 && r2->orphaned.size() == 1 && r2->orphaned[0] == "orphan" && t2.parent(t2.find("orphan")) == kNoMoment,
           "orphan became a root and is reported");
    tap.ok(bool(store.remove_all()), "cleanup");

    // Checkpoints: current is the end of a single chain.
    auto cps = *MomentStore::open(layout, MomentKind::Checkpoint, "rules");
    auto parse_cp = [](const std::string &path, std::string_view text)
        -> Result<MomentStore::Parsed<std::unique_ptr<Meta>>> {
        xml::Document doc = TRY(xml::parse_with_root(text, path, "domaincheckpoint", VIR_FROM_DOMAIN_CHECKPOINT));
        MomentStore::Parsed<std::unique_ptr<Meta>> out;
        out.info.name = doc.root().child_text("name").value_or("");
        if (auto p = doc.root().child("parent")) out.info.parent = p.child_text("name").value_or("");
        out.payload = std::make_unique<Meta>(Meta{out.info.name, out.info.parent});
        return out;
    };
    (void)cps.save("c1", "<domaincheckpoint><name>c1</name></domaincheckpoint>");
    (void)cps.save("c2", "<domaincheckpoint><name>c2</name><parent><name>c1</name></parent></domaincheckpoint>");
    Tree t3;
    auto r3 = cps.load_into<std::unique_ptr<Meta>>(t3, parse_cp);
    tap.ok(r3 && t3.size() == 2 && t3.current() != kNoMoment && t3.name(t3.current()) == "c2",
           "checkpoint current is the single chain's leaf");
}

void test_many(test::Tap &tap, const std::string &root) {
    auto layout = *StateLayout::embedded(root);
    auto store = *MomentStore::open(layout, MomentKind::Snapshot, "many");
    const size_t n = 10000;
    tap.ok(bool(file::make_dirs(store.dir())), "many: directory");
    for (size_t i = 0; i < n; i++) {
        std::string name = "snap" + std::to_string(i);
        put(store.dir() + "/" + name + ".xml",
            snapshot_xml(name, i ? "snap" + std::to_string(i - 1) : "", i == n - 1));
    }
    Tree tree;
    auto start = std::chrono::steady_clock::now();
    auto report = store.load_into<std::unique_ptr<Meta>>(tree, parse_snapshot);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char note[120];
    std::snprintf(note, sizeof note, "loaded %zu snapshot files in %.3f s (XML parse included)", n, secs);
    tap.note(note);
    tap.ok(report && report->skipped.empty() && tree.size() == n, "10,000 files loaded");
    tap.ok(report && !report->inconsistent_relations && tree.name(tree.current()) == "snap9999",
           "10,000-deep chain consistent with its current");
    tap.eq(tree.root_count(), size_t(1), "one root");
    tap.eq(tree.descendant_count(tree.find("snap0")), n - 1, "all below the root");
}

void test_domain_configs(test::Tap &tap, const std::string &root) {
    auto layout = *StateLayout::embedded(root);
    DomainConfigStore configs(layout);
    const std::string xml = "<domain type='qemu'>\n  <name>vm1</name>\n</domain>\n";
    tap.ok(bool(configs.save("vm1", xml, "c7a5fdbd-edaf-9455-926a-d65c16db1809")), "save domain config");
    std::string expected_header =
        "<!--\n"
        "WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
        "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
        "  virsh edit vm1\n"
        "or other application using the libvirt API.\n"
        "-->\n\n";
    tap.eq_text(test::read_text(root + "/etc/qemu/vm1.xml"), expected_header + xml, "config has libvirt's header");
    tap.ok(!file::exists(root + "/etc/qemu/vm1.xml.new"), "no temporary left");
    auto loaded = configs.load("vm1");
    tap.ok(loaded && *loaded == expected_header + xml, "load returns the stored text");

    tap.ok(bool(configs.save("my vm", xml, "c7a5fdbd-edaf-9455-926a-d65c16db1809")), "save unsafe name");
    tap.ok(test::read_text(root + "/etc/qemu/my vm.xml").find("  virsh edit c7a5fdbd-edaf-9455-926a-d65c16db1809\n") !=
               std::string::npos,
           "shell-unsafe name replaced by the UUID");
    tap.ok(xml::file_warning("edit", "a--b").find("  virsh edit\n") != std::string::npos,
           "no safe candidate: command alone");
    tap.ok(xml::file_warning("snapshot-edit", "s1").find("  virsh snapshot-edit s1\n") != std::string::npos,
           "snapshot header names snapshot-edit");

    for (const char *bad : {"../x", "a/b", ".", "", ".."})
        tap.ok(!configs.save(bad, xml) && !configs.set_autostart(bad, true),
               "config store refuses name '" + std::string(bad) + "'");

    put(root + "/etc/qemu/broken.xml", "<domain><name>broken");
    put(root + "/etc/qemu/notes.txt", "not a config");
    auto names_r = configs.list_names();
    tap.ok(names_r && names_r->size() == 3 && (*names_r)[0] == "broken" && (*names_r)[1] == "my vm" &&
               (*names_r)[2] == "vm1",
           "list_names: *.xml only, sorted");
    auto report = configs.load_all([](const std::string &path, std::string_view text) -> Status {
        TRY(xml::parse_with_root(text, path, "domain", VIR_FROM_DOMAIN));
        return ok();
    });
    tap.ok(report && report->loaded.size() == 2 && report->skipped.size() == 1 &&
               report->skipped[0].path == root + "/etc/qemu/broken.xml",
           "corrupt config skipped, the rest loads");

    tap.ok(!configs.autostart("vm1"), "not autostarted at first");
    tap.ok(bool(configs.set_autostart("vm1", true)) && configs.autostart("vm1"), "autostart on");
    char target[512] = {};
    ssize_t len = ::readlink((root + "/etc/qemu/autostart/vm1.xml").c_str(), target, sizeof target - 1);
    tap.ok(len > 0 && std::string(target) == root + "/etc/qemu/vm1.xml", "autostart link points at the config");
    tap.ok(bool(configs.set_autostart("vm1", true)), "autostart on twice is fine");
    auto auto_names = configs.autostart_names();
    tap.ok(auto_names && auto_names->size() == 1 && (*auto_names)[0] == "vm1", "autostart_names");
    tap.ok(bool(configs.set_autostart("vm1", false)) && !configs.autostart("vm1"), "autostart off");
    tap.ok(bool(configs.set_autostart("vm1", true)), "autostart on again");
    tap.ok(bool(configs.remove("vm1")) && !configs.exists("vm1") &&
               !file::exists(root + "/etc/qemu/autostart/vm1.xml"),
           "remove drops config and autostart link");
    tap.ok(bool(configs.remove("vm1")), "removing a missing config is fine");
}

}  // namespace

int main() {
    test::Tap tap;
    test_layout(tap);
    test_store_writes(tap, test::temp_dir("momentstore-writes"));
    test_store_load(tap, test::temp_dir("momentstore-load"));
    test_load_rules(tap, test::temp_dir("momentstore-rules"));
    test_domain_configs(tap, test::temp_dir("momentstore-configs"));
    // Last: the first fsync after writing 10,000 files would pay for them all.
    test_many(tap, test::temp_dir("momentstore-many"));
    return tap.finish();
}
