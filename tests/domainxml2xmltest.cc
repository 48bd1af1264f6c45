// domainxml2xmltest.cc - the <domain> model: every domain embedded in
// libvirt's snapshot and checkpoint fixtures must round-trip byte for byte;
// our own fixtures (tests/domainxml2xmldata) cover every modelled element,
// unknown parts kept in place, and rejections with libvirt's codes and
// wording; outputs validate against libvirt's domain.rng.

#include "tap.hh"

#include "conf/domain_def.hh"
#include "util/file.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <string>

using namespace virtsnap;
using namespace virtsnap::conf;

namespace {

std::string error_line(const Error &e) { return std::to_string(int(e.code)) + " " + e.message(); }

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// The text of the first "  <NAME ...>" ... "  </NAME>\n" block at indentation 2.
std::string embedded_block(const std::string &text, const std::string &root) {
    size_t start = text.find("\n  <" + root + " ");
    if (start == std::string::npos) start = text.find("\n  <" + root + ">");
    if (start == std::string::npos) return {};
    std::string end_tag = "\n  </" + root + ">\n";
    size_t end = text.find(end_tag, start);
    if (end == std::string::npos) return {};
    return text.substr(start + 1, end + end_tag.size() - start - 1);
}

void check_shared_fixtures(test::Tap &t) {
    std::string shared = test::shared_dir();
    if (shared.empty()) {
        t.skip("libvirt snapshot/checkpoint embedded domains", "shared fixtures directory not found");
        return;
    }
    int cases = 0;
    for (const char *dir : {"qemudomainsnapshotxml2xmlout", "qemudomaincheckpointxml2xmlout"}) {
        std::string path = shared + "/fixtures/libvirt/" + dir;
        auto files = file::list_dir(path);
        if (!files) continue;
        for (const auto &f : *files) {
            if (!f.ends_with(".xml")) continue;
            std::string text = test::read_text(path + "/" + f);
            auto doc = xml::parse(text, f, VIR_FROM_DOMAIN_SNAPSHOT);
            if (!doc) {
                t.ok(false, std::string(dir) + "/" + f + " parses", doc.error().message());
                continue;
            }
            for (const char *root : {"domain", "inactiveDomain"}) {
                xml::Node node = doc->root().child(root);
                // <domain><uuid/></domain> alone is the snapshot's reference, not a definition.
                if (!node || !node.has_attr("type")) continue;
                std::string name = std::string(dir) + "/" + f + " <" + root + ">";
                ++cases;
                auto def = DomainDef::parse_node(node, kDomainParseInactive);
                if (!def) {
                    t.ok(false, name + " parses", error_line(def.error()));
                    continue;
                }
                xml::Writer w(2);
                (*def)->format(w, kDomainFormatInactive | kDomainFormatSecure, root);
                t.eq_text(w.str(), embedded_block(text, root), name + " round-trips byte for byte");
                // The copy must format identically (deep copies, shared kept nodes).
                auto copy = (*def)->clone();
                xml::Writer w2(2);
                copy->format(w2, kDomainFormatInactive | kDomainFormatSecure, root);
                t.eq_text(w2.str(), w.str(), name + " clone formats the same");
                if (std::string_view(root) == "domain") {
                    auto out = xml::parse((*def)->format_string(kDomainFormatInactive | kDomainFormatSecure),
                                          "out", VIR_FROM_DOMAIN);
                    auto valid = out ? xml::validate_rng(*out, xml::schema_dir() + "/domain.rng", VIR_FROM_DOMAIN)
                                     : Status(fail(out.error()));
                    t.ok(valid.has_value(), name + " validates against domain.rng",
                         valid ? "" : valid.error().message());
                }
            }
        }
    }
    t.ok(cases >= 8, "found the embedded domains of the shared fixtures (" + std::to_string(cases) + ")");
}

void check_own_fixtures(test::Tap &t) {
    std::string dir = test::source_dir() + "/domainxml2xmldata";
    auto files = file::list_dir(dir);
    if (!t.ok(files.has_value() && !files->empty(), "own fixtures present")) return;
    for (const auto &f : *files) {
        if (!f.ends_with(".xml") || f.ends_with(".out.xml")) continue;
        std::string base = f.substr(0, f.size() - 4);
        std::string input = test::read_text(dir + "/" + f);
        // Inputs whose name starts with "inactive-" are parsed and formatted inactive.
        bool inactive = base.starts_with("inactive-");
        unsigned parse_flags = inactive ? unsigned(kDomainParseInactive) : 0u;
        unsigned format_flags = kDomainFormatSecure | (inactive ? unsigned(kDomainFormatInactive) : 0u);
        auto def = DomainDef::parse_string(input, parse_flags);
        if (file::exists(dir + "/" + base + ".err")) {
            std::string expected = trim(test::read_text(dir + "/" + base + ".err"));
            if (def) t.ok(false, base + " is rejected", "parse succeeded");
            else t.eq(error_line(def.error()), expected, base + " is rejected with libvirt's code and message");
            continue;
        }
        if (!def) {
            t.ok(false, base + " parses", error_line(def.error()));
            continue;
        }
        std::string out = (*def)->format_string(format_flags);
        std::string expected_path = dir + "/" + base + ".out.xml";
        if (!file::exists(expected_path) && !test::regenerate_requested()) expected_path = dir + "/" + f;
        t.eq_file(out, expected_path, base + " formats as expected");

        // Formatting is a fixed point: parse(format(x)) formats the same.
        auto again = DomainDef::parse_string(out, parse_flags);
        t.ok(again && (*again)->format_string(format_flags) == out, base + " re-parses to the same output",
             again ? "" : error_line(again.error()));

        if (base.starts_with("unknown-")) {
            t.skip(base + " validates against domain.rng", "holds elements libvirt's schema does not know, on purpose");
            continue;
        }
        auto doc = xml::parse(out, base, VIR_FROM_DOMAIN);
        auto valid = doc ? xml::validate_rng(*doc, xml::schema_dir() + "/domain.rng", VIR_FROM_DOMAIN)
                         : Status(fail(doc.error()));
        t.ok(valid.has_value(), base + " validates against domain.rng", valid ? "" : valid.error().message());
    }
}

const char *kDisks = R"(<domain type='qemu'>
  <name>d</name>
  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>
  <memory>1024</memory>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file'><source file='/img/a.qcow2'/><target dev='vda'/>
      <backingStore type='file'><format type='qcow2'/><source file='/img/base.qcow2'/><backingStore/></backingStore>
    </disk>
    <disk type='file'><source file='/img/shared.raw'/><target dev='vdb'/></disk>
    <disk type='file'><source file='/img/shared.raw'/><target dev='vdc'/></disk>
    <disk type='network'><source protocol='nbd' name='exp'><host name='h' port='10809'/></source><target dev='vdd'/></disk>
    <graphics type='vnc' port='5900' passwd='s3cret'/>
  </devices>
</domain>)";

void check_api(test::Tap &t) {
    auto parsed = DomainDef::parse_string(kDisks, 0);
    if (!t.ok(parsed.has_value(), "api: sample parses", parsed ? "" : error_line(parsed.error()))) return;
    DomainDef &def = **parsed;

    t.eq(def.disk_index_by_name("vdb"), 1, "disk_index_by_name: target");
    t.eq(def.disk_index_by_name("/img/a.qcow2"), 0, "disk_index_by_name: unique source path");
    t.eq(def.disk_index_by_name("/img/shared.raw"), -1, "disk_index_by_name: ambiguous source path");
    t.eq(def.disk_index_by_name("exp"), -1, "disk_index_by_name: a network name is not a target");
    t.eq(def.disk_index_by_name("vdz"), -1, "disk_index_by_name: unknown");
    t.ok(def.disk_by_target("vdc") == &def.disks[2], "disk_by_target finds the disk");
    t.ok(def.disk_by_target("sda") == nullptr, "disk_by_target: unknown is null");
    t.eq(def.disks[0].target_bus, std::string("virtio"), "bus inferred from the target name");

    const StorageSource &top = def.disks[0].src;
    t.ok(top.backing && top.backing->path == "/img/base.qcow2" && top.backing->backing_terminated &&
             !top.backing->backing,
         "backing chain parsed, terminated");
    StorageSource copy(top);
    t.ok(copy.backing && copy.backing.get() != top.backing.get() && copy.backing->path == top.backing->path &&
             copy.backing->backing_terminated,
         "StorageSource copy is deep");
    StorageSource assigned;
    assigned = top;
    assigned.backing->path = "/changed";
    t.eq(top.backing->path, std::string("/img/base.qcow2"), "StorageSource assignment does not alias");

    t.eq(std::string(storage_type_name(StorageSource::Type::Network)), std::string("network"), "storage_type_name");
    t.ok(storage_type_from_name("volume") == StorageSource::Type::Volume, "storage_type_from_name");
    t.ok(!storage_type_from_name("bogus"), "storage_type_from_name: unknown");

    std::string secure = def.format_string(kDomainFormatSecure);
    std::string plain = def.format_string(0);
    t.ok(secure.find("passwd='s3cret'") != std::string::npos, "graphics password with kDomainFormatSecure");
    t.ok(plain.find("passwd") == std::string::npos, "graphics password hidden without kDomainFormatSecure");

    xml::Writer w(2);
    def.format(w, kDomainFormatInactive, "inactiveDomain");
    t.ok(w.str().starts_with("  <inactiveDomain type='qemu'>\n") && w.str().ends_with("  </inactiveDomain>\n"),
         "format with another root element name");

    auto active = DomainDef::parse_string(
        "<domain type='kvm' id='7'><name>a</name><memory>1</memory><os><type>hvm</type></os></domain>", 0);
    t.ok(active && (*active)->id == 7 && (*active)->format_string(0).starts_with("<domain type='kvm' id='7'>") &&
             (*active)->format_string(kDomainFormatInactive).starts_with("<domain type='kvm'>\n"),
         "id written only when active and not inactive");
    auto inactive = DomainDef::parse_string(
        "<domain type='kvm' id='7'><name>a</name><memory>1</memory><os><type>hvm</type></os></domain>",
        kDomainParseInactive);
    t.ok(inactive && (*inactive)->id == -1, "id ignored with kDomainParseInactive");

    auto a = DomainDef::parse_string("<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os></domain>", 0);
    auto b = DomainDef::parse_string("<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os></domain>", 0);
    t.ok(a && b && !((*a)->uuid == Uuid{}) && !((*a)->uuid == (*b)->uuid), "uuid generated when absent");

    // NVMe and vhost-user sources are modelled, not kept as text.
    auto nv = DomainDef::parse_string(
        "<domain type='kvm'><name>n</name><memory>1</memory><os><type>hvm</type></os><devices>"
        "<disk type='nvme'><source type='pci' namespace='18446744073709551615' managed='no'>"
        "<address domain='0x10' bus='255' slot='017' function='07'/></source><target dev='vda'/></disk>"
        "<disk type='vhostuser'><source type='unix' path='/run/v.sock'/><target dev='vdb'/></disk>"
        "<disk type='nvme'><source type='pci' namespace=' -1'><address function='12'/></source>"
        "<target dev='vdc'/></disk></devices></domain>",
        0);
    if (t.ok(nv.has_value(), "api: nvme/vhostuser sample parses", nv ? "" : error_line(nv.error()))) {
        const StorageSource &nvme = (*nv)->disks[0].src;
        t.ok(nvme.nvme && nvme.nvme->namespace_id == 18446744073709551615ULL && nvme.nvme->managed == "no" &&
                 nvme.nvme->address.domain == 16 && nvme.nvme->address.bus == 255 &&
                 nvme.nvme->address.slot == 15 && nvme.nvme->address.function == 7 && !nvme.empty(),
             "nvme source: namespace, managed and the address in any C base");
        const StorageSource &vhost = (*nv)->disks[1].src;
        t.ok(vhost.vhostuser_path == std::optional<std::string>("/run/v.sock") && !vhost.empty() &&
                 vhost.path.empty(),
             "vhostuser source: the socket path, not a file path");
        std::string out = (*nv)->format_string(0);
        t.ok(out.find("<source type='pci' managed='no' namespace='18446744073709551615'>\n"
                      "        <address domain='0x0010' bus='0xff' slot='0x0f' function='0x7'/>") != std::string::npos,
             "nvme source: libvirt's attribute order and address layout", out);
        // strtoull wraps " -1" as libvirt's virStrToLong_ull does; an all-zero
        // address is not range-checked, and its function stays a fixed point.
        t.ok(out.find("namespace='18446744073709551615'>\n        <address domain='0x0000' bus='0x00' slot='0x00' "
                      "function='0xc'/>") != std::string::npos,
             "nvme source: wrapped namespace, unchecked all-zero address", out);
        auto again = DomainDef::parse_string(out, 0);
        t.ok(again && (*again)->format_string(0) == out, "nvme/vhostuser sample is a fixed point");
    }

    auto validated = DomainDef::parse_string(
        "<domain type='kvm'><name>a</name><memory>1</memory><os><type>hvm</type></os><bogus/></domain>",
        kDomainParseValidate);
    t.ok(!validated && validated.error().code == VIR_ERR_XML_INVALID_SCHEMA, "kDomainParseValidate checks domain.rng");
}

}  // namespace

int main() {
    test::Tap t;
    check_shared_fixtures(t);
    check_own_fixtures(t);
    check_api(t);
    return t.finish();
}
