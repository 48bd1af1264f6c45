// checkpointxml2xmltest.cc - <domaincheckpoint> parse/format against libvirt
// 9.0's own fixtures (read in place from ../shared, following the procedure of
// its qemudomaincheckpointxml2xmltest.c), our in/out and rejection fixtures,
// disk alignment, the metadata file, and RNG validity of everything we emit.

#include "conf/checkpoint_def.hh"
#include "tap.hh"
#include "util/file.hh"
#include "util/xml_doc.hh"
#include "util/xml_file_warning.hh"

#include <string>
#include <vector>

using namespace virtsnap;
using namespace virtsnap::conf;
using virtsnap::test::Tap;

namespace {

enum CaseFlags : unsigned { kRedefine = 1, kParent = 2, kVdaBitmap = 4, kSize = 8, kInvalid = 16 };

std::string schema() { return xml::schema_dir() + "/domaincheckpoint.rng"; }

bool validates(const std::string &text) {
    auto doc = xml::parse(text, "(test)", VIR_FROM_NONE);
    return doc && xml::validate_rng(*doc, schema(), VIR_FROM_XML).has_value();
}

// libvirt's test post-parse hook: a fixed creation time, refused when the
// parse already set one.
CheckpointPostParse mock_time(long long t) {
    return [t](CheckpointDef &def) -> Status {
        if (def.creation_time) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN_CHECKPOINT, "time set");
        def.creation_time = t;
        if (!def.name) def.name = std::to_string(t);
        return ok();
    };
}

// Runs one case as testCompareXMLToXMLFiles does; "" on success, else why not.
std::string run_case(const std::string &in, const std::string &expected, long long time, unsigned flags,
                     std::string *got) {
    unsigned parse_flags = (flags & kRedefine) ? unsigned(kCheckpointParseRedefine) : 0u;
    auto def = CheckpointDef::parse_string(in, parse_flags, time ? mock_time(time) : CheckpointPostParse{});
    if (flags & kInvalid) return def ? "parse unexpectedly succeeded" : "";
    if (!def) return "parse failed: " + def.error().message();
    CheckpointDef &d = **def;
    unsigned format_flags = kCheckpointFormatSecure;
    if (flags & kParent) {
        if (d.parent_name) return "parent already set";
        d.parent_name = "1525111885";
    }
    if (flags & kVdaBitmap) {
        if (d.disks.empty()) d.disks.push_back({"vda", CheckpointDiskType::Bitmap, d.name, {}});
        else {
            auto &disk = d.disks[0];
            if (disk.bitmap || disk.name != "vda") return "disk 0 is not a bare vda";
            disk.bitmap = d.name;
        }
    }
    if (flags & kSize) {
        d.disks[0].size = 1048576;
        format_flags |= kCheckpointFormatSize;
    }
    if (!d.dom) format_flags |= kCheckpointFormatNoDomain;
    *got = d.format(format_flags);
    return *got == expected ? "" : "output differs";
}

void shared_cases(Tap &t) {
    std::string shared = test::shared_dir();
    if (shared.empty()) {
        t.skip("libvirt checkpoint fixtures", "../shared is absent");
        return;
    }
    std::string base = shared + "/fixtures/libvirt/qemudomaincheckpointxml2xml";
    struct Case { const char *in, *out; long long time; unsigned flags; };
    const Case cases[] = {
        {"out/redefine", "out/redefine", 0, kRedefine},
        {"in/empty", "out/empty", 1525889631, kVdaBitmap},
        {"in/disk-default", "out/disk-default", 1525889631, kParent | kVdaBitmap},
        {"in/sample", "out/sample", 1525889631, kParent | kVdaBitmap},
        {"in/size", "out/size", 1553648510, kParent | kVdaBitmap | kSize},
        {"in/disk-invalid", nullptr, 0, kInvalid},
        {"in/name-invalid", nullptr, 0, kInvalid},
    };
    for (const auto &c : cases) {
        auto path = [&](const char *rel) {
            std::string r(rel);
            return base + r.substr(0, r.find('/')) + r.substr(r.find('/')) + ".xml";
        };
        std::string in = test::read_text(path(c.in));
        std::string expected = c.out ? test::read_text(path(c.out)) : "";
        std::string got;
        std::string why = run_case(in, expected, c.time, c.flags, &got);
        if (why == "output differs") t.eq_text(got, expected, std::string("libvirt ") + c.in);
        else t.ok(why.empty(), std::string("libvirt ") + c.in, why);
        if (!got.empty()) t.ok(validates(got), std::string("output of ") + c.in + " validates");
    }
    // virschematest's rule: *-invalid.xml fails the schema, everything else passes.
    for (const char *dir : {"in", "out"}) {
        auto names = file::list_dir(base + dir);
        if (!names) continue;
        for (const auto &n : *names) {
            bool invalid = n.find("-invalid.xml") != std::string::npos;
            bool ok = validates(test::read_text(base + dir + "/" + n));
            t.ok(ok != invalid, std::string("schema ") + dir + "/" + n + (invalid ? " fails" : " passes"));
        }
    }
}

void own_cases(Tap &t) {
    std::string dir = test::source_dir() + "/checkpointxml2xmldata/";
    struct Case { const char *name; long long time; unsigned flags; };
    for (const Case &c : {Case{"redefine-full", 0, kRedefine}, Case{"create-ignores-redefine-only", 1600000000, 0}}) {
        std::string in = test::read_text(dir + c.name + "-in.xml");
        auto def = CheckpointDef::parse_string(
            in, (c.flags & kRedefine) ? unsigned(kCheckpointParseRedefine) : 0u, c.time ? mock_time(c.time) : CheckpointPostParse{});
        if (!t.ok(def.has_value(), std::string(c.name) + " parses", def ? "" : def.error().message())) continue;
        std::string got = (*def)->format(kCheckpointFormatSecure);
        t.eq_file(got, dir + c.name + "-out.xml", std::string(c.name) + " output");
        t.ok(validates(got), std::string(c.name) + " output validates");
        // What we print we read back to the same thing.
        auto again = CheckpointDef::parse_string(got, kCheckpointParseRedefine);
        t.ok(again && (*again)->format(kCheckpointFormatSecure) == got, std::string(c.name) + " round trip");
    }

    struct Reject { const char *name; unsigned flags; virErrorNumber code; virErrorDomain domain; const char *msg; };
    const Reject rejects[] = {
        {"reject-redefine-no-creationtime", kCheckpointParseRedefine, VIR_ERR_INTERNAL_ERROR,
         VIR_FROM_DOMAIN_CHECKPOINT, "internal error: missing creationTime from existing checkpoint"},
        {"reject-redefine-no-name", kCheckpointParseRedefine, VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN_CHECKPOINT,
         "XML error: a redefined checkpoint must have a name"},
        {"reject-wrong-root", 0, VIR_ERR_XML_ERROR, VIR_FROM_XML,
         "XML error: expecting root element of 'domaincheckpoint', not 'domainsnapshot'"},
        {"reject-malformed", 0, VIR_ERR_XML_DETAIL, VIR_FROM_DOMAIN_CHECKPOINT, nullptr},
        {"reject-name-dot", 0, VIR_ERR_XML_INVALID_SCHEMA, VIR_FROM_XML, nullptr},
        {"reject-no-with-bitmap", 0, VIR_ERR_XML_INVALID_SCHEMA, VIR_FROM_XML, nullptr},
        // Without the schema our own checks still refuse an unsafe name.
        {"reject-name-dot", kCheckpointParseSkipValidate, VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN_CHECKPOINT,
         "XML error: invalid checkpoint name '.hidden'"},
    };
    for (const auto &r : rejects) {
        auto def = CheckpointDef::parse_string(test::read_text(dir + r.name + ".xml"), r.flags);
        std::string label = std::string(r.name) + (r.flags & kCheckpointParseSkipValidate ? " (no schema)" : "");
        if (!t.ok(!def.has_value(), label + " is refused")) continue;
        t.eq(int(def.error().code), int(r.code), label + " code");
        t.eq(int(def.error().domain), int(r.domain), label + " domain");
        if (r.msg) t.eq(def.error().message(), std::string(r.msg), label + " message");
    }
}

DomainDisk make_disk(const char *target, const char *path, bool readonly = false) {
    DomainDisk d;
    d.target_dev = target;
    d.src.type = StorageSource::Type::File;
    d.src.path = path;
    d.src.format = "qcow2";
    d.readonly = readonly;
    return d;
}

std::unique_ptr<DomainDef> make_domain() {
    auto dom = std::make_unique<DomainDef>();
    dom->name = "guest";
    dom->disks.push_back(make_disk("vda", "/img/a.qcow2"));
    dom->disks.push_back(make_disk("vdb", "/img/b.qcow2"));
    dom->disks.push_back(make_disk("hdc", "", true));  // empty cdrom
    dom->disks.push_back(make_disk("vdc", "/img/ro.qcow2", true));
    return dom;
}

void align_cases(Tap &t) {
    auto with = [](std::vector<CheckpointDiskDef> disks) {
        CheckpointDef def;
        def.name = "c9";
        def.creation_time = 1;
        def.disks = std::move(disks);
        def.dom = make_domain();
        return def;
    };
    {
        CheckpointDef def = with({});
        t.ok(def.align_disks().has_value(), "align: no <disks> aligns");
        t.eq_text(def.format(kCheckpointFormatNoDomain),
                  "<domaincheckpoint>\n  <name>c9</name>\n  <creationTime>1</creationTime>\n  <disks>\n"
                  "    <disk name='vda' checkpoint='bitmap' bitmap='c9'/>\n"
                  "    <disk name='vdb' checkpoint='bitmap' bitmap='c9'/>\n"
                  "    <disk name='hdc' checkpoint='no'/>\n    <disk name='vdc' checkpoint='no'/>\n"
                  "  </disks>\n</domaincheckpoint>\n",
                  "align: every writable disk gets a bitmap named after the checkpoint");
    }
    {
        CheckpointDef def = with({{"/img/b.qcow2", CheckpointDiskType::Bitmap, "mine", {}}});
        t.ok(def.align_disks().has_value(), "align: disk named by path");
        t.eq_text(def.format(kCheckpointFormatNoDomain),
                  "<domaincheckpoint>\n  <name>c9</name>\n  <creationTime>1</creationTime>\n  <disks>\n"
                  "    <disk name='vda' checkpoint='no'/>\n"
                  "    <disk name='vdb' checkpoint='bitmap' bitmap='mine'/>\n"
                  "    <disk name='hdc' checkpoint='no'/>\n    <disk name='vdc' checkpoint='no'/>\n"
                  "  </disks>\n</domaincheckpoint>\n",
                  "align: path becomes target, unnamed disks are skipped");
    }
    struct Bad { std::vector<CheckpointDiskDef> disks; const char *msg; };
    const Bad bad[] = {
        {{{"vdz", CheckpointDiskType::Bitmap, {}, {}}}, "unsupported configuration: no disk named 'vdz'"},
        {{{"vda", CheckpointDiskType::Bitmap, {}, {}}, {"/img/a.qcow2", CheckpointDiskType::None, {}, {}}},
         "unsupported configuration: disk '/img/a.qcow2' specified twice"},
        {{{"vdc", CheckpointDiskType::Bitmap, {}, {}}}, "unsupported configuration: disk 'vdc' is empty or readonly"},
        {{{"hdc", CheckpointDiskType::Bitmap, {}, {}}}, "unsupported configuration: disk 'hdc' is empty or readonly"},
        {std::vector<CheckpointDiskDef>(5, CheckpointDiskDef{"vda", CheckpointDiskType::None, {}, {}}),
         "unsupported configuration: too many disk checkpoint requests for domain"},
    };
    for (const auto &b : bad) {
        CheckpointDef def = with(b.disks);
        auto st = def.align_disks();
        if (!t.ok(!st.has_value(), std::string("align refuses: ") + b.msg)) continue;
        t.eq(st.error().message(), std::string(b.msg), "align error text");
        t.eq(int(st.error().code), int(VIR_ERR_CONFIG_UNSUPPORTED), "align error code");
    }
    {
        CheckpointDef def = with({});
        def.dom.reset();
        auto st = def.align_disks();
        t.ok(!st && st.error().message() == "internal error: missing domain in checkpoint", "align: no domain");
        def.dom = std::make_unique<DomainDef>();
        st = def.align_disks();
        t.ok(!st && st.error().message() ==
                        "unsupported configuration: domain must have at least one disk to perform checkpoints",
             "align: domain without disks");
    }
}

void metadata_cases(Tap &t) {
    CheckpointDef def;
    def.name = "c1";
    def.description = "d";
    def.creation_time = 1553647812;
    def.parent_name = "c0";
    def.disks.push_back({"vda", CheckpointDiskType::Bitmap, "c1", 4096});
    std::string text = def.format_metadata_file();
    t.eq_text(text.substr(0, text.find("<domaincheckpoint>")),
              "<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
              "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
              "  virsh checkpoint-edit\nor other application using the libvirt API.\n-->\n\n",
              "metadata file starts with libvirt's warning");
    t.ok(text.find("size=") == std::string::npos, "metadata file has no size");
    auto back = CheckpointDef::parse_metadata_file(text);
    t.ok(back && (*back)->format(kCheckpointFormatSecure) == def.format(kCheckpointFormatSecure),
         "metadata file reads back", back ? "" : back.error().message());
    t.ok(validates(def.format(kCheckpointFormatSecure | kCheckpointFormatSize)), "SIZE output validates");
    t.eq(checkpoint_format_flags_from_xml_flags(7u | 8u), 7u, "public XML flags map to format flags");
    t.eq(xml::file_warning("snapshot-edit", "dom").find("  virsh snapshot-edit dom\n") != std::string::npos,
         true, "warning names the object when given");
}

}  // namespace

int main() {
    Tap t;
    shared_cases(t);
    own_cases(t);
    align_cases(t);
    metadata_cases(t);
    return t.finish();
}
