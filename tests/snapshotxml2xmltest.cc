// snapshotxml2xmltest.cc - <domainsnapshot> parse/format, metadata files, disk
// alignment, create-flag checks.
//
// Parts: libvirt's own xml2xml cases (read in place from ../shared, following
// CASES.md), RNG validation of every document read or written, the project's
// fixtures in snapshotxml2xmldata/ (in/out pairs per parse mode and rejection
// cases with their error), alignment against small domains, and table tests of
// the flag, name, state and defaults rules.

#include "tap.hh"

#include "conf/domain_def.hh"
#include "conf/snapshot_align.hh"
#include "conf/snapshot_def.hh"
#include "conf/snapshot_flags.hh"
#include "util/file.hh"
#include "util/xml_doc.hh"

#include <libvirt/libvirt.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using namespace virtsnap;
using namespace virtsnap::conf;

namespace {

const char *const kUuid1 = "9d37b878-a7cc-9f9a-b78f-49b3abad25a8";
const char *const kUuid2 = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
const char *const kUuid3 = "14beef2c-8cae-4ea8-bf55-e48fe0cd4b73";

std::string data_dir() { return test::source_dir() + "/snapshotxml2xmldata"; }
std::string schema_path() { return xml::schema_dir() + "/domainsnapshot.rng"; }

std::string error_line(const Error &e) { return std::to_string(int(e.code)) + " " + e.message(); }

// The test post-parse hook of libvirt's qemudomainsnapshotxml2xmltest: pins the
// creation time (refusing one set by the parser) and names unnamed snapshots.
MomentPostParse pinned_time(int64_t t) {
    return [t](SnapshotDef &d) -> Status {
        if (t == 0) return ok();
        if (d.creation_time)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "creationTime already set");
        d.creation_time = t;
        if (d.name.empty()) d.name = std::to_string(t);
        return ok();
    };
}

// Every emitted document must pass the schema libvirt installs, except the
// metadata-only <snapshotDeleteInProgress/> the schema does not describe, and
// disks named '' (accepted without VALIDATE, as libvirt does).
void check_rng(test::Tap &t, const std::string &text, const std::string &what) {
    if (text.find("<disk name=''") != std::string::npos) {
        t.skip("rng " + what,
               "a disk named '' parses and formats (libvirt too) but the schema's target pattern refuses it");
        return;
    }
    if (text.find("<snapshotDeleteInProgress/>") != std::string::npos) {
        t.skip("rng " + what, "snapshotDeleteInProgress is metadata-only and not in domainsnapshot.rng");
        return;
    }
    auto doc = xml::parse(text, what, VIR_FROM_DOMAIN_SNAPSHOT);
    if (!doc) {
        t.ok(false, "rng " + what, doc.error().message());
        return;
    }
    auto st = xml::validate_rng(*doc, schema_path(), VIR_FROM_DOMAIN_SNAPSHOT);
    t.ok(st.has_value(), "rng " + what, st ? "" : st.error().message());
}

// ---- libvirt's cases (CASES.md) ----

struct SharedCase {
    const char *in;        // "in/name" or "out/name"
    const char *out;
    const char *uuid;      // nullptr = none
    int64_t creation_time;
    bool redefine, internal, running;
};

const SharedCase kSharedCases[] = {
    {"out/all_parameters", "out/all_parameters", kUuid1, 0, true, true, false},
    {"out/disk_snapshot_redefine", "out/disk_snapshot_redefine", kUuid2, 0, true, true, false},
    {"out/full_domain", "out/full_domain", kUuid2, 0, true, true, false},
    {"out/noparent_nodescription_noactive", "out/noparent_nodescription_noactive", nullptr, 0, true, false, false},
    {"out/noparent_nodescription", "out/noparent_nodescription", nullptr, 0, true, true, false},
    {"out/noparent", "out/noparent", kUuid1, 0, true, false, false},
    {"out/metadata", "out/metadata", kUuid2, 0, true, false, false},
    {"out/external_vm_redefine", "out/external_vm_redefine", kUuid2, 0, true, false, false},
    {"out/memory-snapshot-inactivedomain", "out/memory-snapshot-inactivedomain", kUuid3, 0, true, false, false},
    {"in/empty", "out/empty", kUuid1, 1386166249, false, false, false},
    {"in/noparent", "out/noparent", kUuid1, 1272917631, false, false, true},
    {"in/external_vm", "out/external_vm", nullptr, 1555419243, false, false, false},
    {"in/disk_snapshot", "out/disk_snapshot", nullptr, 1555419243, false, false, false},
    {"in/disk_driver_name_null", "out/disk_driver_name_null", nullptr, 1555419243, false, false, false},
    {"in/disk-seclabel", "out/disk-seclabel", kUuid1, 581484660, false, false, false},
    {"in/name_and_description", "in/name_and_description", nullptr, 0, false, false, false},
    {"in/description_only", "in/description_only", nullptr, 0, false, false, false},
    {"in/name_only", "in/name_only", nullptr, 0, false, false, false},
    {"in/qcow2-metadata-cache", "out/qcow2-metadata-cache", kUuid1, 1386166249, false, false, false},
};

std::string shared_path(const std::string &shared, const std::string &rel) {
    bool in = rel.rfind("in/", 0) == 0;
    return shared + "/fixtures/libvirt/qemudomainsnapshotxml2xml" + (in ? "in/" : "out/") +
           rel.substr(in ? 3 : 4) + ".xml";
}

// Runs one case exactly as testCompareXMLToXMLFiles does; returns the output.
Result<std::string> run_shared_case(const SharedCase &c, const std::string &input) {
    unsigned parse_flags = 0, format_flags = kSnapshotFormatSecure;
    if (c.redefine) parse_flags |= kSnapshotParseRedefine;
    if (c.internal) {
        parse_flags |= kSnapshotParseInternal;
        format_flags |= kSnapshotFormatInternal;
    }
    auto def = TRY(SnapshotDef::parse_string(input, parse_flags, pinned_time(c.creation_time)));
    if (c.internal && def->current) format_flags |= kSnapshotFormatCurrent;
    if (c.running) {
        if (def->state != SnapshotState::NoState)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_SNAPSHOT, "parser set a state");
        def->state = SnapshotState::Running;
    }
    std::optional<Uuid> uuid;
    if (c.uuid) uuid = Uuid::parse(c.uuid);
    return def->format(uuid, format_flags);
}

void test_shared_cases(test::Tap &t) {
    std::string shared = test::shared_dir();
    if (shared.empty()) {
        t.skip("libvirt snapshot xml2xml cases", "../shared is absent; libvirt fixtures are read in place");
        return;
    }
    for (const auto &c : kSharedCases) {
        std::string name = std::string("libvirt ") + c.in + " -> " + c.out;
        std::string input = test::read_text(shared_path(shared, c.in));
        auto out = run_shared_case(c, input);
        if (!out) {
            t.ok(false, name, error_line(out.error()));
            continue;
        }
        t.eq_text(*out, test::read_text(shared_path(shared, c.out)), name);
        check_rng(t, *out, std::string("output of ") + c.in);
        // What we print must read back to the same text (dumpxml -> redefine).
        if (c.redefine) {
            SharedCase again = c;
            auto out2 = run_shared_case(again, *out);
            t.ok(out2 && *out2 == *out, name + " is stable", out2 ? "" : error_line(out2.error()));
        }
    }
}

// libvirt's virschematest: every fixture passes the RNG unless named *-invalid.
void test_shared_schema(test::Tap &t) {
    std::string shared = test::shared_dir();
    if (shared.empty()) {
        t.skip("libvirt snapshot fixtures against domainsnapshot.rng", "../shared is absent");
        return;
    }
    for (const char *sub : {"qemudomainsnapshotxml2xmlin", "qemudomainsnapshotxml2xmlout"}) {
        std::string dir = shared + "/fixtures/libvirt/" + sub;
        auto files = file::list_dir(dir);
        if (!t.ok(files.has_value() && !files->empty(), std::string("list ") + sub)) continue;
        for (const auto &f : *files) {
            auto doc = xml::parse(test::read_text(dir + "/" + f), f, VIR_FROM_DOMAIN_SNAPSHOT);
            bool invalid = f.find("-invalid.xml") != std::string::npos;
            bool valid = doc && xml::validate_rng(*doc, schema_path(), VIR_FROM_DOMAIN_SNAPSHOT).has_value();
            t.ok(valid != invalid, std::string("schema ") + sub + "/" + f + (invalid ? " fails" : " passes"));
        }
    }
}

// ---- the project's fixtures ----

// snapshotxml2xmldata/<mode>/NAME.xml -> NAME.out.xml, or NAME.err for a
// rejection ("<code> <message>"). A mode is a parse-flag set plus how the
// result is formatted.
struct Mode {
    const char *dir;
    unsigned parse_flags;
    bool format_internal;
    int64_t creation_time;  // pinned for non-redefine parses
    const char *uuid;
};

const Mode kModes[] = {
    {"create", 0, false, 1700000000, kUuid1},
    {"create-offline", kSnapshotParseOffline, false, 1700000000, nullptr},
    {"create-validate", kSnapshotParseValidate, false, 1700000000, nullptr},
    {"redefine", kSnapshotParseRedefine, false, 0, kUuid2},
    {"internal", kSnapshotParseRedefine | kSnapshotParseInternal, true, 0, kUuid2},
};

void test_own_fixtures(test::Tap &t) {
    for (const auto &m : kModes) {
        std::string dir = data_dir() + "/" + m.dir;
        auto files = file::list_dir(dir);
        if (!t.ok(files.has_value() && !files->empty(), std::string("fixtures in ") + m.dir)) continue;
        for (const auto &f : *files) {
            if (f.size() < 5 || f.substr(f.size() - 4) != ".xml" || f.find(".out.xml") != std::string::npos)
                continue;
            std::string base = dir + "/" + f.substr(0, f.size() - 4);
            std::string name = std::string(m.dir) + "/" + f;
            auto def = SnapshotDef::parse_string(test::read_text(dir + "/" + f), m.parse_flags,
                                                 pinned_time(m.creation_time));
            if (file::exists(base + ".err")) {
                std::string expected = test::read_text(base + ".err");
                while (!expected.empty() && expected.back() == '\n') expected.pop_back();
                if (def) t.ok(false, name + " is rejected", "parsed without error");
                else t.eq(error_line(def.error()), expected, name + " is rejected");
                continue;
            }
            if (!def) {
                t.ok(false, name, error_line(def.error()));
                continue;
            }
            unsigned ff = kSnapshotFormatSecure;
            if (m.format_internal) ff |= kSnapshotFormatInternal | ((*def)->current ? unsigned(kSnapshotFormatCurrent) : 0u);
            std::optional<Uuid> uuid;
            if (m.uuid) uuid = Uuid::parse(m.uuid);
            std::string out = (*def)->format(uuid, ff);
            t.eq_file(out, base + ".out.xml", name);
            check_rng(t, out, name + " output");
            if (m.parse_flags & kSnapshotParseRedefine) {
                auto again = SnapshotDef::parse_string(out, m.parse_flags);
                t.ok(again && (*again)->format(uuid, ff) == out, name + " reparses to the same text");
            }
        }
    }
}

// ---- metadata files ----

void test_metadata_file(test::Tap &t) {
    auto def = SnapshotDef::parse_string(
        "<domainsnapshot><name>s1</name><state>shutoff</state><creationTime>12</creationTime>"
        "<parent><name>s0</name></parent><disks><disk name='vda' snapshot='external'>"
        "<snapshotDeleteInProgress/><source file='/i/vda.s1'/></disk></disks></domainsnapshot>",
        kSnapshotParseRedefine);
    if (!t.ok(def.has_value(), "metadata: redefine parse", def ? "" : error_line(def.error()))) return;
    Uuid uuid = *Uuid::parse(kUuid1);
    std::string text = snapshot_metadata_file_text(**def, uuid, true);
    std::string expected = std::string(snapshot_metadata_warning()) +
                           "<domainsnapshot>\n"
                           "  <name>s1</name>\n"
                           "  <state>shutoff</state>\n"
                           "  <parent>\n"
                           "    <name>s0</name>\n"
                           "  </parent>\n"
                           "  <creationTime>12</creationTime>\n"
                           "  <memory snapshot='no'/>\n"
                           "  <disks>\n"
                           "    <disk name='vda' snapshot='external' type='file'>\n"
                           "      <snapshotDeleteInProgress/>\n"
                           "      <source file='/i/vda.s1'/>\n"
                           "    </disk>\n"
                           "  </disks>\n"
                           "  <domain>\n"
                           "    <uuid>" + std::string(kUuid1) + "</uuid>\n"
                           "  </domain>\n"
                           "  <active>1</active>\n"
                           "</domainsnapshot>\n";
    t.eq_text(text, expected, "metadata: file text");
    t.ok(text.rfind("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
                    "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
                    "  virsh snapshot-edit\nor other application using the libvirt API.\n-->\n\n",
                    0) == 0,
         "metadata: virXMLEmitWarning comment naming snapshot-edit");
    auto back = snapshot_parse_metadata_file(text);
    if (!t.ok(back.has_value(), "metadata: file parses back", back ? "" : error_line(back.error()))) return;
    t.ok((*back)->current, "metadata: <active>1 read as current");
    t.ok((*back)->disks.size() == 1 && (*back)->disks[0].delete_in_progress, "metadata: delete-in-progress kept");
    t.eq(snapshot_metadata_file_text(**back, uuid, true), text, "metadata: rewrite is identical");
    std::string not_current = snapshot_metadata_file_text(**back, uuid, false);
    t.ok(not_current.find("<active>0</active>") != std::string::npos, "metadata: <active>0 when not current");
    auto nc = snapshot_parse_metadata_file(not_current);
    t.ok(nc && !(*nc)->current, "metadata: <active>0 read as not current");

    auto no_active = snapshot_parse_metadata_file(
        "<domainsnapshot><name>x</name><state>running</state><creationTime>1</creationTime></domainsnapshot>");
    t.eq(no_active ? std::string("ok") : error_line(no_active.error()),
         std::string("1 internal error: Could not find 'active' element"), "metadata: <active> is required");
}

// ---- alignment ----

struct DiskSpec {
    const char *target;
    StorageSource::Type type;
    const char *source;     // path (local) or name (network); "" = empty drive
    const char *snapshot;   // domain <disk snapshot=>
};

std::unique_ptr<DomainDef> small_domain(const std::vector<DiskSpec> &disks, const std::string &dir) {
    auto d = std::make_unique<DomainDef>();
    d->name = "small";
    d->uuid = *Uuid::parse(kUuid1);
    for (const auto &s : disks) {
        DomainDisk disk;
        disk.target_dev = s.target;
        disk.src.type = s.type;
        std::string src = s.source;
        if (!src.empty() && src[0] == '@') src = dir + "/" + src.substr(1);  // a real file in the temp dir
        if (s.type == StorageSource::Type::Network) {
            disk.src.protocol = "rbd";
            disk.src.name = src;
        } else {
            disk.src.path = src;
        }
        disk.snapshot = s.snapshot;
        d->disks.push_back(std::move(disk));
    }
    return d;
}

struct AlignCase {
    const char *name;
    std::vector<DiskSpec> disks;
    std::string snapshot_xml;
    SnapshotLocation location;
    std::string expected;  // formatted <disks> part, or "<code> <message>"
};

std::string disks_text(const SnapshotDef &def) {
    xml::Writer w(0);
    for (const auto &d : def.disks) d.format(w);
    return w.take();
}

void test_alignment(test::Tap &t) {
    using T = StorageSource::Type;
    using L = SnapshotLocation;
    std::string dir = test::temp_dir("snapalign");
    for (const char *f : {"a.qcow2", "b.img", "c", "d.qcow2", "d.raw"}) std::ofstream(dir + "/" + f) << "x";
    const std::string D = dir;

    const std::vector<AlignCase> cases = {
        {"internal default fills every disk",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b.qcow2", ""}},
         "<domainsnapshot/>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n<disk name='vdb' snapshot='internal'/>\n"},
        {"empty drive and domain snapshot='no' are skipped",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"hdc", T::File, "", ""}, {"vdc", T::File, "/i/c", "no"}},
         "<domainsnapshot/>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n<disk name='hdc' snapshot='no'/>\n<disk name='vdc' snapshot='no'/>\n"},
        {"listed disk without location takes domain's 'no' under uniform internal",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", "no"}},
         "<domainsnapshot><disks><disk name='vdb'/></disks></domainsnapshot>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n<disk name='vdb' snapshot='no'/>\n"},
        {"listed disk ignores domain's 'external' under uniform internal",
         {{"vda", T::File, "/i/a.qcow2", "external"}},
         "<domainsnapshot><disks><disk name='vda'/></disks></domainsnapshot>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n"},
        {"explicit 'no' allowed when the domain disk also says 'no'",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", "no"}},
         "<domainsnapshot><disks><disk name='vdb' snapshot='no'/></disks></domainsnapshot>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n<disk name='vdb' snapshot='no'/>\n"},
        {"explicit 'no' refused under uniform internal",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", ""}},
         "<domainsnapshot><disks><disk name='vdb' snapshot='no'/></disks></domainsnapshot>", L::Internal,
         "67 unsupported configuration: disk 'vdb' must use snapshot mode 'internal'"},
        {"external disk refused under uniform internal",
         {{"vda", T::File, "/i/a.qcow2", ""}},
         "<domainsnapshot><disks><disk name='vda'><source file='/o/x'/></disk></disks></domainsnapshot>",
         L::Internal, "67 unsupported configuration: disk 'vda' must use snapshot mode 'internal'"},
        {"path with non-external location",
         {{"vda", T::File, "/i/a.qcow2", ""}},
         "<domainsnapshot><disks><disk name='vda' snapshot='internal'><source file='/o/x'/></disk></disks>"
         "</domainsnapshot>",
         L::External, "67 unsupported configuration: file '/o/x' for disk 'vda' requires use of external snapshot mode"},
        {"too many disks",
         {{"vda", T::File, "/i/a.qcow2", ""}},
         "<domainsnapshot><disks><disk name='vda'/><disk name='vdb'/></disks></domainsnapshot>", L::External,
         "67 unsupported configuration: too many disk snapshot requests for domain"},
        {"unknown disk",
         {{"vda", T::File, "/i/a.qcow2", ""}},
         "<domainsnapshot><disks><disk name='sda'/></disks></domainsnapshot>", L::External,
         "67 unsupported configuration: no disk named 'sda'"},
        {"same disk twice (target and path)",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", ""}},
         "<domainsnapshot><disks><disk name='vda' snapshot='no'/><disk name='/i/a.qcow2' snapshot='no'/></disks>"
         "</domainsnapshot>",
         L::External, "67 unsupported configuration: disk '/i/a.qcow2' specified twice"},
        {"ambiguous source path is unknown",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/a.qcow2", ""}},
         "<domainsnapshot><disks><disk name='/i/a.qcow2' snapshot='no'/></disks></domainsnapshot>", L::External,
         "67 unsupported configuration: no disk named '/i/a.qcow2'"},
        {"path names are rewritten to targets, order follows the domain",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", ""}},
         "<domainsnapshot><disks><disk name='/i/b' snapshot='external'><source file='/o/b.s'/></disk>"
         "<disk name='vda' snapshot='external'><source file='/o/a.s'/></disk></disks></domainsnapshot>",
         L::External,
         "<disk name='vda' snapshot='external' type='file'>\n  <source file='/o/a.s'/>\n</disk>\n"
         "<disk name='vdb' snapshot='external' type='file'>\n  <source file='/o/b.s'/>\n</disk>\n"},
        {"default external names drop the last suffix",
         {{"vda", T::File, "@a.qcow2", ""}, {"vdb", T::File, "@b.img", ""}, {"vdc", T::File, "@c", ""}},
         "<domainsnapshot><name>s1</name></domainsnapshot>", L::External,
         "<disk name='vda' snapshot='external' type='file'>\n  <source file='" + D + "/a.s1'/>\n</disk>\n"
         "<disk name='vdb' snapshot='external' type='file'>\n  <source file='" + D + "/b.s1'/>\n</disk>\n"
         "<disk name='vdc' snapshot='external' type='file'>\n  <source file='" + D + "/c.s1'/>\n</disk>\n"},
        {"manual and no disks get no name",
         {{"vda", T::File, "@a.qcow2", "manual"}, {"vdb", T::File, "@b.img", ""}},
         "<domainsnapshot><name>s1</name><disks><disk name='vdb' snapshot='no'/></disks></domainsnapshot>",
         L::External, "<disk name='vda' snapshot='manual'/>\n<disk name='vdb' snapshot='no'/>\n"},
        {"generated name collision",
         {{"vda", T::File, "@d.qcow2", ""}, {"vdb", T::File, "@d.raw", ""}},
         "<domainsnapshot><name>s1</name></domainsnapshot>", L::External,
         "67 unsupported configuration: cannot generate external snapshot name for disk 'vdb': collision with disk 'vda'"},
        {"collision with a given path",
         {{"vda", T::File, "/i/x", ""}, {"vdb", T::File, "@d.raw", ""}},
         "<domainsnapshot><name>s1</name><disks><disk name='vda'><source file='" + D + "/d.s1'/></disk>"
         "</disks></domainsnapshot>",
         L::External,
         "67 unsupported configuration: cannot generate external snapshot name for disk 'vdb': collision with disk 'vda'"},
        {"default name needs a file snapshot type",
         {{"vda", T::File, "@a.qcow2", ""}},
         "<domainsnapshot><name>s1</name><disks><disk name='vda' snapshot='external' type='block'/></disks>"
         "</domainsnapshot>",
         L::External,
         "67 unsupported configuration: cannot generate external snapshot name for disk 'vda' on a 'block' device"},
        {"default name needs a source",
         {{"vda", T::Network, "", ""}},
         "<domainsnapshot><name>s1</name><disks><disk name='vda' snapshot='external'/></disks></domainsnapshot>",
         L::External,
         "67 unsupported configuration: cannot generate external snapshot name for disk 'vda' without source"},
        {"default name needs a regular file",
         {{"vda", T::File, "/nonexistent/a.qcow2", ""}},
         "<domainsnapshot><name>s1</name></domainsnapshot>", L::External,
         "67 unsupported configuration: source for disk 'vda' is not a regular file; refusing to generate "
         "external snapshot name"},
        {"network disk source is not a regular file",
         {{"vda", T::Network, "pool/img", ""}},
         "<domainsnapshot><name>s1</name></domainsnapshot>", L::External,
         "67 unsupported configuration: source for disk 'vda' is not a regular file; refusing to generate "
         "external snapshot name"},
        {"non-uniform internal keeps explicit locations",
         {{"vda", T::File, "/i/a.qcow2", ""}, {"vdb", T::File, "/i/b", ""}},
         "<domainsnapshot><disks><disk name='vdb' snapshot='no'/></disks></domainsnapshot>", L::Internal,
         "<disk name='vda' snapshot='internal'/>\n<disk name='vdb' snapshot='no'/>\n"},
        {"domain without disks",
         {},
         "<domainsnapshot/>", L::Internal, ""},
    };

    for (size_t i = 0; i < cases.size(); ++i) {
        const AlignCase &c = cases[i];
        auto dom = small_domain(c.disks, dir);
        auto def = SnapshotDef::parse_string(c.snapshot_xml, 0, pinned_time(1));
        if (!t.ok(def.has_value(), std::string("align parse: ") + c.name)) continue;
        bool uniform = std::string(c.name).rfind("non-uniform", 0) != 0;
        auto st = snapshot_align_disks(**def, dom.get(), c.location, uniform);
        std::string got = st ? disks_text(**def) : error_line(st.error());
        t.eq(got, c.expected, std::string("align: ") + c.name);
        if (st && !(*def)->disks.empty()) check_rng(t, (*def)->format(std::nullopt, 0), std::string("align: ") + c.name);
    }

    auto def = SnapshotDef::parse_string("<domainsnapshot/>", 0);
    auto st = snapshot_align_disks(**def, nullptr, L::Internal, true);
    t.eq(st ? std::string("ok") : error_line(st.error()),
         std::string("1 internal error: missing domain in snapshot"), "align: missing domain");

    // The whole create path of a running domain, disk-only, with a next-boot config.
    auto live = small_domain({{"vda", T::File, "@a.qcow2", ""}, {"hdc", T::File, "", ""}}, dir);
    auto next = small_domain({{"vda", T::File, "@a.qcow2", ""}}, dir);
    auto snap = SnapshotDef::parse_string("<domainsnapshot><name>s2</name></domainsnapshot>",
                                          kSnapshotParseOffline, pinned_time(5));
    auto cst = snapshot_create_align(**snap, std::move(live), std::move(next), VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY,
                                     true, SnapshotState::Running);
    t.ok(cst.has_value(), "create align: disk-only of a running domain", cst ? "" : error_line(cst.error()));
    t.ok((*snap)->state == SnapshotState::DiskSnapshot && (*snap)->memory == L::No && (*snap)->domain &&
             (*snap)->inactive_domain,
         "create align: disk-snapshot state, no memory, both domains kept");
    t.eq(disks_text(**snap),
         "<disk name='vda' snapshot='external' type='file'>\n  <source file='" + D + "/a.s2'/>\n</disk>\n"
         "<disk name='hdc' snapshot='no'/>\n",
         "create align: default external name and skipped empty cdrom");
}

// ---- defaults (spec 2.4) ----

void test_create_defaults(test::Tap &t) {
    using L = SnapshotLocation;
    using S = SnapshotState;
    struct Row {
        const char *name;
        unsigned flags;
        bool active;
        S dom_state;
        L memory_in;
        S want_state;
        L want_memory, want_location;
        const char *err;
    };
    const unsigned DO = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
    const Row rows[] = {
        {"active disk-only", DO, true, S::Running, L::Default, S::DiskSnapshot, L::No, L::External, nullptr},
        {"inactive disk-only", DO, false, S::Shutoff, L::Default, S::Shutoff, L::No, L::External, nullptr},
        {"active external memory", 0, true, S::Running, L::External, S::Running, L::External, L::External, nullptr},
        {"paused external memory", 0, true, S::Paused, L::External, S::Paused, L::External, L::External, nullptr},
        {"active no memory element", 0, true, S::Running, L::Default, S::Running, L::Internal, L::Internal, nullptr},
        {"active internal memory", 0, true, S::Paused, L::Internal, S::Paused, L::Internal, L::Internal, nullptr},
        {"active memory no", 0, true, S::Running, L::No, S::Running, L::No, L::Internal,
         "84 Operation not supported: internal snapshot of a running VM must include the memory state"},
        {"inactive full", 0, false, S::Shutoff, L::Default, S::Shutoff, L::No, L::Internal, nullptr},
        {"inactive memory no", 0, false, S::Shutoff, L::No, S::Shutoff, L::No, L::Internal, nullptr},
    };
    for (const auto &r : rows) {
        SnapshotDef def;
        def.memory = r.memory_in;
        if (r.memory_in == L::External) def.memory_file = "/m";
        auto loc = snapshot_create_defaults(def, r.flags, r.active, r.dom_state);
        if (r.err) {
            t.eq(loc ? std::string("ok") : error_line(loc.error()), std::string(r.err), std::string("defaults: ") + r.name);
            continue;
        }
        t.ok(loc && *loc == r.want_location && def.state == r.want_state && def.memory == r.want_memory,
             std::string("defaults: ") + r.name);
    }
    SnapshotDef d;
    d.state = SnapshotState::DiskSnapshot;
    t.ok(snapshot_redefine_align_location(d) == L::External, "redefine location: disk-snapshot -> external");
    d.state = SnapshotState::Running;
    t.ok(snapshot_redefine_align_location(d) == L::Internal, "redefine location: running -> internal");
    d.memory = L::External;
    t.ok(snapshot_redefine_align_location(d) == L::External, "redefine location: external memory -> external");
}

// ---- create flags ----

void test_flags(test::Tap &t) {
    const unsigned RD = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, CUR = VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT,
                   NM = VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA, HALT = VIR_DOMAIN_SNAPSHOT_CREATE_HALT,
                   DO = VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, RE = VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT,
                   Q = VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE, AT = VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC,
                   LIVE = VIR_DOMAIN_SNAPSHOT_CREATE_LIVE, VAL = VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE,
                   INST = kSnapshotCreateInstant;
    struct Row {
        unsigned flags;
        bool persistent;
        bool read_only;
        const char *err;  // nullptr = accepted
    };
    const std::string req = "8 invalid argument: Flag '", excl = "8 invalid argument: Flags '";
    const std::vector<std::pair<Row, std::string>> rows = {
        {{0, true, false, nullptr}, ""},
        {{0, true, true, nullptr}, "29 operation forbidden: read only access prevents virDomainSnapshotCreateXML"},
        {{CUR, true, false, nullptr},
         req + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'"},
        {{RD | CUR, true, false, nullptr}, ""},
        {{RD | NM, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA' are mutually exclusive"},
        {{RD | HALT, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_HALT' are mutually exclusive"},
        {{CUR | NM, true, false, nullptr},
         req + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT'"},
        {{1u << 11, true, false, nullptr}, "8 invalid argument: unsupported flags (0x800) in function qemuSnapshotCreateXML"},
        {{(1u << 20) | LIVE, true, false, nullptr},
         "8 invalid argument: unsupported flags (0x100000) in function qemuSnapshotCreateXML"},
        {{RD | NM | (1u << 12), true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA' are mutually exclusive"},
        {{Q, true, false, nullptr},
         req + "VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE'"},
        {{Q | DO, true, false, nullptr}, ""},
        {{LIVE | RD, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_LIVE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' are mutually exclusive"},
        {{LIVE, true, false, nullptr}, ""},
        {{INST, true, false, nullptr},
         req + "VIR_DOMAIN_SNAPSHOT_CREATE_LIVE' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT'"},
        {{INST | LIVE, true, false, nullptr}, ""},
        {{INST | LIVE | HALT, true, false, nullptr}, ""},
        {{INST | DO, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT' and 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' are mutually exclusive"},
        {{INST | LIVE | DO, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT' and 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' are mutually exclusive"},
        {{INST | RD, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT' and 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' are mutually exclusive"},
        {{INST | LIVE | RD, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT' and 'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' are mutually exclusive"},
        {{INST | Q | DO, true, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT' and 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' are mutually exclusive"},
        {{INST | Q, true, false, nullptr},
         req + "VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag 'VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE'"},
        {{HALT, false, false, nullptr}, "55 Requested operation is not valid: cannot halt after transient domain snapshot"},
        {{HALT, true, false, nullptr}, ""},
        {{HALT | LIVE | RD, false, false, nullptr},
         excl + "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' and 'VIR_DOMAIN_SNAPSHOT_CREATE_HALT' are mutually exclusive"},
        {{DO | RE | Q | AT | VAL, true, false, nullptr}, ""},
        {{RD | CUR | DO | VAL | AT, false, false, nullptr}, ""},
        {{NM | HALT | DO, true, false, nullptr}, ""},
        {{NM | HALT, false, false, nullptr}, "55 Requested operation is not valid: cannot halt after transient domain snapshot"},
        {{kSnapshotCreateSupported & ~(RD | CUR | INST), true, false, nullptr}, ""},
    };
    for (const auto &[r, want] : rows) {
        char name[128];
        std::snprintf(name, sizeof name, "flags 0x%x %s%s", r.flags, r.persistent ? "persistent" : "transient",
                      r.read_only ? " read-only" : "");
        auto st = validate_snapshot_create_flags(r.flags, true, r.persistent, r.read_only);
        t.eq(st ? std::string("") : error_line(st.error()), want, name);
    }
    auto dom_err = validate_snapshot_create_flags(INST, true, true);
    t.ok(!dom_err && dom_err.error().domain == VIR_FROM_QEMU, "flags: driver checks report VIR_FROM_QEMU");
    auto api_err = validate_snapshot_create_flags(CUR, true, true);
    t.ok(!api_err && api_err.error().domain == VIR_FROM_DOMAIN_SNAPSHOT,
         "flags: public-API checks report VIR_FROM_DOMAIN_SNAPSHOT");

    t.eq(snapshot_parse_flags_for_create(0, true), 0u, "parse flags: running, plain");
    t.eq(snapshot_parse_flags_for_create(0, false), unsigned(kSnapshotParseOffline), "parse flags: inactive -> offline");
    t.eq(snapshot_parse_flags_for_create(DO, true), unsigned(kSnapshotParseOffline), "parse flags: disk-only -> offline");
    t.eq(snapshot_parse_flags_for_create(RD | VAL, true), unsigned(kSnapshotParseRedefine | kSnapshotParseValidate),
         "parse flags: redefine + validate");
}

void test_names_and_states(test::Tap &t) {
    const unsigned NM = VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA, RD = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE,
                   LIVE = VIR_DOMAIN_SNAPSHOT_CREATE_LIVE;
    struct NameRow {
        const char *name;
        unsigned flags;
        const char *err;
    };
    const NameRow names[] = {
        {"s1", 0, ""},
        {"a/b", 0, "35 invalid snapshot name 'a/b': name can't contain '/'"},
        {"a/b", RD, "35 invalid snapshot name 'a/b': name can't contain '/'"},
        {".hidden", 0, "35 invalid snapshot name '.hidden': name can't start with '.'"},
        {"./x", 0, "35 invalid snapshot name './x': name can't contain '/'"},
        {"a/b", NM, ""},
        {".x", NM, ""},
        {"with space \"quote\"\nnewline", 0, ""},
        {"x.", 0, ""},
    };
    for (const auto &n : names) {
        auto st = validate_snapshot_name(n.name, n.flags);
        std::string shown = n.name;
        for (auto &c : shown)
            if (c == '\n') c = '|';  // a TAP line cannot hold a newline
        t.eq(st ? std::string("") : error_line(st.error()), std::string(n.err),
             "name rule '" + shown + "' flags " + std::to_string(n.flags));
    }

    using S = SnapshotState;
    struct DefRow {
        const char *name;
        unsigned flags;
        bool active;
        S dom_state, xml_state;
        SnapshotLocation memory;
        const char *err;
    };
    const char *live_err = "84 Operation not supported: live snapshot creation is supported only during full system snapshots";
    const DefRow defs[] = {
        {"running", 0, true, S::Running, S::NoState, SnapshotLocation::Default, ""},
        {"paused", 0, true, S::Paused, S::NoState, SnapshotLocation::Default, ""},
        {"shutdown", 0, true, S::Shutdown, S::NoState, SnapshotLocation::Default, ""},
        {"shutoff", 0, false, S::Shutoff, S::NoState, SnapshotLocation::Default, ""},
        {"crashed", 0, true, S::Crashed, S::NoState, SnapshotLocation::Default, ""},
        {"pmsuspended", 0, true, S::PmSuspended, S::NoState, SnapshotLocation::Default,
         "84 Operation not supported: qemu doesn't support taking snapshots of PMSUSPENDED guests"},
        {"blocked", 0, true, S::Blocked, S::NoState, SnapshotLocation::Default,
         "1 internal error: Invalid domain state blocked"},
        {"nostate", 0, true, S::NoState, S::NoState, SnapshotLocation::Default,
         "1 internal error: Invalid domain state nostate"},
        {"redefine uses the XML state", RD, true, S::PmSuspended, S::DiskSnapshot, SnapshotLocation::No, ""},
        {"redefine pmsuspended", RD, false, S::Shutoff, S::PmSuspended, SnapshotLocation::No,
         "84 Operation not supported: qemu doesn't support taking snapshots of PMSUSPENDED guests"},
        {"live external memory", LIVE, true, S::Running, S::NoState, SnapshotLocation::External, ""},
        {"live internal memory", LIVE, true, S::Running, S::NoState, SnapshotLocation::Internal, live_err},
        {"live inactive", LIVE, false, S::Shutoff, S::NoState, SnapshotLocation::External, live_err},
    };
    for (const auto &r : defs) {
        SnapshotDef def;
        def.name = "s";
        def.state = r.xml_state;
        def.memory = r.memory;
        auto st = validate_snapshot_create_def(def, r.flags, r.active, r.dom_state);
        t.eq(st ? std::string("") : error_line(st.error()), std::string(r.err), std::string("create def: ") + r.name);
    }
    SnapshotDef bad;
    bad.name = "x/y";
    auto st = validate_snapshot_create_def(bad, LIVE, false, S::Shutoff);
    t.eq(st ? std::string("") : error_line(st.error()),
         std::string("35 invalid snapshot name 'x/y': name can't contain '/'"), "create def: name checked first");

    for (int i = 0; i <= int(S::DiskSnapshot); ++i) {
        auto back = snapshot_state_from_name(snapshot_state_name(S(i)));
        t.ok(back && *back == S(i), "state name round trip " + std::string(snapshot_state_name(S(i))));
    }
}

// Parsing details libvirt's fixtures do not cover, checked on the model.
void test_model(test::Tap &t) {
    auto def = SnapshotDef::parse_string(
        "<domainsnapshot><name>n</name><disks><disk name='vda' type='network'>"
        "<source protocol='nbd' tls='yes'><host name='h' port='010' transport='tcp'/>"
        "<host transport='unix' socket='/s'/></source></disk></disks></domainsnapshot>",
        0, pinned_time(3));
    if (t.ok(def.has_value(), "model: nbd without name", def ? "" : error_line(def.error()))) {
        const auto &d = (*def)->disks[0];
        t.ok(d.snapshot == SnapshotLocation::Default && d.hosts.size() == 2 && d.hosts[0].port == "10" &&
                 d.hosts[0].transport.empty() && d.hosts[1].socket == "/s",
             "model: hosts normalised, no path so no default location");
    }
    auto created = SnapshotDef::parse_string("<domainsnapshot/>", 0);
    t.ok(created && (*created)->creation_time && *(*created)->creation_time > 1600000000 &&
             (*created)->name == std::to_string(*(*created)->creation_time),
         "model: default post-parse names by the current time");
    auto redefined = SnapshotDef::parse_string(
        "<domainsnapshot><name>n</name><state>running</state><creationTime>7</creationTime>"
        "<domain><uuid>" + std::string(kUuid1) + "</uuid></domain><cookie><cpu mode='host-model'/></cookie>"
        "</domainsnapshot>",
        kSnapshotParseRedefine);
    t.ok(redefined && !(*redefined)->domain && (*redefined)->legacy_domain_uuid &&
             (*redefined)->legacy_domain_uuid->str() == kUuid1 && (*redefined)->cookie,
         "model: old-style domain uuid remembered, cookie kept");
    if (redefined) {
        auto copy = *(*redefined);
        t.eq(copy.format(std::nullopt, 0), (*redefined)->format(std::nullopt, 0), "model: copies format alike");
    }
}

}  // namespace

int main() {
    test::Tap t;
    test_shared_cases(t);
    test_shared_schema(t);
    test_own_fixtures(t);
    test_metadata_file(t);
    test_alignment(t);
    test_create_defaults(t);
    test_flags(t);
    test_names_and_states(t);
    test_model(t);
    return t.finish();
}
