// backupxml2xmltest.cc - <domainbackup> parse/format/alignment against libvirt
// 9.0's fixtures (read in place from ../shared, following the procedure of its
// genericxml2xmltest.c backup cases), our in/out and rejection fixtures, and
// RNG validity of everything we emit.

#include "conf/backup_def.hh"
#include "tap.hh"
#include "util/file.hh"
#include "util/xml_doc.hh"

#include <string>
#include <vector>

using namespace virtsnap;
using namespace virtsnap::conf;
using virtsnap::test::Tap;

namespace {

std::string schema() { return xml::schema_dir() + "/domainbackup.rng"; }

bool validates(const std::string &text) {
    auto doc = xml::parse(text, "(test)", VIR_FROM_NONE);
    return doc && xml::validate_rng(*doc, schema(), VIR_FROM_XML).has_value();
}

DomainDisk file_disk(const std::string &target, const std::string &path, bool readonly = false) {
    DomainDisk d;
    d.target_dev = target;
    d.src.type = StorageSource::Type::File;
    d.src.path = path;
    d.src.format = "qcow2";
    d.readonly = readonly;
    return d;
}

// libvirt's fake domain: one qcow2 file disk per backup disk, then vdextradisk.
DomainDef fake_domain(const BackupDef &def) {
    DomainDef dom;
    dom.name = "fake";
    for (const auto &disk : def.disks) dom.disks.push_back(file_disk(disk.name, "/fake/" + disk.name + ".qcow2"));
    dom.disks.push_back(file_disk("vdextradisk", "/fake/vdextradisk.qcow2"));
    return dom;
}

// Parse, align against the fake domain with suffix SUFFIX, format.
Result<std::string> run(const std::string &in, bool internal) {
    auto def = TRY(BackupDef::parse_string(in, internal ? unsigned(kBackupParseInternal) : 0u));
    TRY(def->align_disks(fake_domain(*def), "SUFFIX"));
    return def->format(internal);
}

void shared_cases(Tap &t) {
    std::string shared = test::shared_dir();
    if (shared.empty()) {
        t.skip("libvirt backup fixtures", "../shared is absent");
        return;
    }
    std::string base = shared + "/fixtures/libvirt/domainbackupxml2xml";
    struct Case { const char *name; bool internal; };
    const Case cases[] = {
        {"empty", false},          {"backup-pull", false},         {"backup-pull-seclabel", false},
        {"backup-pull-encrypted", false}, {"backup-push", false}, {"backup-push-seclabel", false},
        {"backup-push-encrypted", false}, {"backup-pull-internal-invalid", true},
    };
    for (const auto &c : cases) {
        std::string expected = test::read_text(base + "out/" + c.name + ".xml");
        auto got = run(test::read_text(base + "in/" + c.name + ".xml"), c.internal);
        if (!t.ok(got.has_value(), std::string("libvirt ") + c.name + " parses and aligns",
                  got ? "" : got.error().message()))
            continue;
        t.eq_text(*got, expected, std::string("libvirt ") + c.name);
        bool invalid = std::string(c.name).find("-invalid") != std::string::npos;
        t.ok(validates(*got) != invalid, std::string("output of ") + c.name + (invalid ? " fails" : " passes") +
                                             " the schema");
    }
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
    std::string dir = test::source_dir() + "/backupxml2xmldata/";
    DomainDef two;
    two.disks.push_back(file_disk("vda", "/fake/vda.qcow2"));
    two.disks.push_back(file_disk("vdb", "/fake/vdb.qcow2"));
    struct Case { const char *name; bool internal; };
    for (const Case &c : {Case{"pull-unix", false}, Case{"push-full", false}, Case{"internal-status", true}}) {
        auto def = BackupDef::parse_string(test::read_text(dir + c.name + "-in.xml"),
                                           c.internal ? unsigned(kBackupParseInternal) : 0u);
        if (!t.ok(def.has_value(), std::string(c.name) + " parses", def ? "" : def.error().message())) continue;
        auto st = (*def)->align_disks(two, "SUFFIX");
        t.ok(st.has_value(), std::string(c.name) + " aligns", st ? "" : st.error().message());
        std::string got = (*def)->format(c.internal);
        t.eq_file(got, dir + c.name + "-out.xml", std::string(c.name) + " output");
        if (!c.internal) t.ok(validates(got), std::string(c.name) + " output validates");
        auto again = BackupDef::parse_string(got, c.internal ? unsigned(kBackupParseInternal) : 0u);
        t.ok(again && (*again)->format(c.internal) == got, std::string(c.name) + " round trip");
    }

    // Rejections, with libvirt 9.0's code, domain and text (checked against it).
    struct Reject { const char *xml; unsigned flags; virErrorNumber code; virErrorDomain domain; const char *msg; };
    const unsigned I = kBackupParseInternal;
    const Reject rejects[] = {
        {"<domainbackup mode='bogus'/>", I, VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
         "unsupported configuration: unknown backup mode 'bogus'"},
        {"<domainbackup mode='push'><server name='x'/></domainbackup>", I, VIR_ERR_CONFIG_UNSUPPORTED,
         VIR_FROM_DOMAIN, "unsupported configuration: use of <server> requires pull mode backup"},
        {"<domainbackup mode='pull'><server transport='rdma' name='x'/></domainbackup>", I,
         VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
         "unsupported configuration: transport rdma is not supported for <server>"},
        {"<domainbackup mode='pull'><server transport='unix' socket='rel'/></domainbackup>", I, VIR_ERR_XML_ERROR,
         VIR_FROM_DOMAIN, "XML error: backup socket path 'rel' must be absolute"},
        {"<domainbackup mode='pull'><server transport='unix'/></domainbackup>", I, VIR_ERR_XML_ERROR,
         VIR_FROM_DOMAIN, "XML error: missing socket for unix transport"},
        {"<domainbackup mode='pull'><server transport='tcp' socket='/x' name='h'/></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: transport 'tcp' does not support socket attribute"},
        {"<domainbackup mode='pull'><server transport='foo' name='h'/></domainbackup>", I,
         VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN, "unsupported configuration: unknown protocol transport type 'foo'"},
        {"<domainbackup mode='pull'><server port='22'/></domainbackup>", I, VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
         "XML error: missing name for host"},
        {"<domainbackup mode='pull'><server name='h' port='99999'/></domainbackup>", I, VIR_ERR_INVALID_ARG,
         VIR_FROM_NONE, "invalid argument: port '99999' out of range"},
        {"<domainbackup mode='pull'><server name='h' port=''/></domainbackup>", I, VIR_ERR_INVALID_ARG,
         VIR_FROM_NONE, "invalid argument: failed to parse port number ''"},
        {"<domainbackup mode='pull'><server name='h' tls='x'/></domainbackup>", I, VIR_ERR_XML_ERROR, VIR_FROM_XML,
         "XML error: Invalid value for attribute 'tls' in element 'server': 'x'."},
        {"<domainbackup><disks><disk state='running'/></disks></domainbackup>", I, VIR_ERR_XML_ERROR,
         VIR_FROM_DOMAIN, "XML error: missing name from disk backup element"},
        {"<domainbackup><disks><disk name='vda' state='running' backup='maybe'/></disks></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_XML, "XML error: Invalid value for attribute 'backup' in element 'disk': 'maybe'."},
        {"<domainbackup><disks><disk name='vda'/></disks></domainbackup>", I, VIR_ERR_XML_ERROR, VIR_FROM_XML,
         "XML error: Missing required attribute 'state' in element 'disk'"},
        {"<domainbackup><disks><disk name='vda' state='bogus'/></disks></domainbackup>", I, VIR_ERR_XML_ERROR,
         VIR_FROM_XML, "XML error: Invalid value for attribute 'state' in element 'disk': 'bogus'."},
        {"<domainbackup><disks><disk name='vda' state='running' backupmode='x'/></disks></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_XML, "XML error: Invalid value for attribute 'backupmode' in element 'disk': 'x'."},
        {"<domainbackup><disks><disk name='vda' state='running' type='dir'/></disks></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: unsupported disk backup type 'dir'"},
        {"<domainbackup><disks><disk name='vda' state='running' type='zzz'/></disks></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: unknown storage source type 'zzz'"},
        {"<domainbackup><disks><disk name='vda' state='running'><driver type='none'/></disk></disks></domainbackup>",
         I, VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: unknown storage source format 'none'"},
        {"<domainbackup><disks><disk name='vda' state='running' index='abc'/></disks></domainbackup>", I,
         VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "XML error: invalid storage source index 'abc'"},
        {"<domainbackup><disks><disk name='vda' state='running'><target file='/a'><seclabel model='dac'/>"
         "<seclabel model='dac'/></target></disk></disks></domainbackup>",
         I, VIR_ERR_XML_DETAIL, VIR_FROM_DOMAIN, "seclabel for model dac is already provided"},
        {"<domainbackup><disks><disk name='vda' state='running'><target file='/a'><seclabel model='dac' "
         "relabel='no'><label>x</label></seclabel></target></disk></disks></domainbackup>",
         I, VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
         "XML error: Cannot specify a label if relabelling is turned off. model=dac"},
        {"<domainbackup><disks><disk name='vda' state='running'><target file='/a'><encryption/></target></disk>"
         "</disks></domainbackup>",
         I, VIR_ERR_XML_ERROR, VIR_FROM_STORAGE, "XML error: unknown volume encryption format"},
        {"<domainbackup><disks><disk name='vda' state='running'><target file='/a'><encryption format='luks'>"
         "<secret type='passphrase' uuid='bad'/></encryption></target></disk></disks></domainbackup>",
         I, VIR_ERR_XML_ERROR, VIR_FROM_NONE, "XML error: invalid secret uuid 'bad'"},
        {"<domainsnapshot/>", 0, VIR_ERR_XML_ERROR, VIR_FROM_XML,
         "XML error: expecting root element of 'domainbackup', not 'domainsnapshot'"},
        {"<domainbackup><disks>", 0, VIR_ERR_XML_DETAIL, VIR_FROM_DOMAIN, nullptr},
        // Schema-only rejections (the pull <server> is mandatory, push has no scratch).
        {"<domainbackup mode='pull'/>", 0, VIR_ERR_XML_INVALID_SCHEMA, VIR_FROM_XML, nullptr},
        {"<domainbackup><disks><disk name='vda' type='file'><scratch file='/x'/></disk></disks></domainbackup>", 0,
         VIR_ERR_XML_INVALID_SCHEMA, VIR_FROM_XML, nullptr},
    };
    for (const auto &r : rejects) {
        auto def = BackupDef::parse_string(r.xml, r.flags);
        std::string label = std::string("refuses ") + r.xml;
        if (!t.ok(!def.has_value(), label)) continue;
        t.eq(int(def.error().code), int(r.code), "  code");
        t.eq(int(def.error().domain), int(r.domain), "  domain");
        if (r.msg) t.eq(def.error().message(), std::string(r.msg), "  message");
    }
}

void align_cases(Tap &t) {
    DomainDef dom;
    dom.disks.push_back(file_disk("vda", "/img/a.qcow2"));
    DomainDisk blk = file_disk("vdb", "/dev/sdb");
    blk.src.type = StorageSource::Type::Block;
    dom.disks.push_back(blk);
    dom.disks.push_back(file_disk("hdc", "", true));
    dom.disks.push_back(file_disk("vdc", "/img/ro.qcow2", true));

    auto align = [&](const char *xml) -> Result<std::string> {
        auto def = TRY(BackupDef::parse_string(xml, kBackupParseSkipValidate));
        TRY(def->align_disks(dom, "bak"));
        return def->format(false);
    };
    auto got = align("<domainbackup><disks><disk name='vdb' type='block'><target dev='/dev/bk'/></disk>"
                     "</disks></domainbackup>");
    t.ok(got.has_value(), "align: named block disk", got ? "" : got.error().message());
    if (got)
        t.eq_text(*got,
                  "<domainbackup mode='push'>\n  <disks>\n"
                  "    <disk name='vdb' backup='yes' type='block' backupmode='full'>\n"
                  "      <target dev='/dev/bk'/>\n    </disk>\n"
                  "    <disk name='vda' backup='no'/>\n    <disk name='hdc' backup='no'/>\n"
                  "    <disk name='vdc' backup='no'/>\n  </disks>\n</domainbackup>\n",
                  "align: other disks are appended with backup='no'");
    struct Bad { const char *xml; const char *msg; };
    const Bad bad[] = {
        {"<domainbackup/>", "unsupported configuration: refusing to generate file name for disk 'vdb'"},
        {"<domainbackup><disks><disk name='vdz'/></disks></domainbackup>",
         "unsupported configuration: no disk named 'vdz'"},
        {"<domainbackup><disks><disk name='vda'/><disk name='vda' backup='no'/></disks></domainbackup>",
         "unsupported configuration: disk 'vda' specified twice"},
        {"<domainbackup><disks><disk name='hdc'/></disks></domainbackup>",
         "unsupported configuration: disk 'hdc' has no media"},
        {"<domainbackup><disks><disk name='vda' backupmode='incremental'/></disks></domainbackup>",
         "unsupported configuration: 'incremental' backup mode of disk 'vda' requires setting 'incremental' field "
         "for disk or backup"},
    };
    for (const auto &b : bad) {
        auto r = align(b.xml);
        if (!t.ok(!r.has_value(), std::string("align refuses ") + b.xml)) continue;
        t.eq(r.error().message(), std::string(b.msg), "  message");
        t.eq(int(r.error().code), int(VIR_ERR_CONFIG_UNSUPPORTED), "  code");
    }
    DomainDef only_file;
    only_file.disks.push_back(file_disk("vda", "/img/a.qcow2"));
    only_file.disks.push_back(file_disk("hdc", "", true));
    auto def = BackupDef::parse_string("<domainbackup/>", 0);
    t.ok(def && (*def)->align_disks(only_file, "bak").has_value(), "align: empty backup covers all disks");
    if (def)
        t.eq_text((*def)->format(false),
                  "<domainbackup mode='push'>\n  <disks>\n"
                  "    <disk name='vda' backup='yes' type='file' backupmode='full'>\n"
                  "      <target file='/img/a.qcow2.bak'/>\n    </disk>\n"
                  "    <disk name='hdc' backup='no'/>\n  </disks>\n</domainbackup>\n",
                  "align: generated target named after the source");
    DomainDef none;
    auto empty = BackupDef::parse_string("<domainbackup/>", 0);
    auto st = (*empty)->align_disks(none, "bak");
    t.ok(!st && st.error().message() ==
                    "unsupported configuration: domain must have at least one disk to perform backup",
         "align: domain without disks");
}

}  // namespace

int main() {
    Tap t;
    shared_cases(t);
    own_cases(t);
    align_cases(t);
    return t.finish();
}
