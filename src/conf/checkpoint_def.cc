// checkpoint_def.cc - <domaincheckpoint> parse, format, alignment and the
// metadata file, following libvirt 9.0's checkpoint_conf.c.

#include "conf/checkpoint_def.hh"
#include "util/xml_file_warning.hh"

#include "conf/checkpoint_common.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <libvirt/libvirt-domain-checkpoint.h>

#include <glib.h>

#include <set>
#include <string>

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_DOMAIN_CHECKPOINT;

Unexpected error(virErrorNumber code, std::string detail) {
    return fail(code, kDomain, std::move(detail));
}

std::string_view type_name(CheckpointDiskType t) {
    switch (t) {
    case CheckpointDiskType::Default: return "default";
    case CheckpointDiskType::None: return "no";
    case CheckpointDiskType::Bitmap: return "bitmap";
    }
    return "default";
}

// The checkpointName pattern of domaincheckpoint.rng: no leading '.', no '/'
// or newline, so the name is always a safe file name for the metadata file.
bool valid_checkpoint_name(std::string_view name) {
    auto ok_char = [](char c) {
        return g_ascii_isalnum(c) || c == '_' || c == '-' || c == '.';
    };
    if (name.empty() || name[0] == '.') return false;
    for (char c : name)
        if (!ok_char(c)) return false;
    return true;
}

Result<CheckpointDiskDef> parse_disk(xml::Node node) {
    CheckpointDiskDef disk;
    // The schema guarantees a name; without validation we refuse rather than
    // keep a disk libvirt would drop on output.
    auto name = node.attr("name");
    if (!name)
        return error(VIR_ERR_XML_ERROR, "missing name from disk checkpoint element");
    disk.name = *name;
    if (auto checkpoint = node.attr("checkpoint")) {
        if (*checkpoint == "no") disk.type = CheckpointDiskType::None;
        else if (*checkpoint == "bitmap") disk.type = CheckpointDiskType::Bitmap;
        else
            return error(VIR_ERR_XML_ERROR, "unknown checkpoint type '" + *checkpoint + "'");
    } else {
        disk.type = CheckpointDiskType::Bitmap;
    }
    disk.bitmap = node.attr("bitmap");
    return disk;
}

}  // namespace

unsigned checkpoint_format_flags_from_xml_flags(unsigned xml_flags) {
    unsigned out = 0;
    if (xml_flags & VIR_DOMAIN_CHECKPOINT_XML_SECURE) out |= kCheckpointFormatSecure;
    if (xml_flags & VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN) out |= kCheckpointFormatNoDomain;
    if (xml_flags & VIR_DOMAIN_CHECKPOINT_XML_SIZE) out |= kCheckpointFormatSize;
    return out;
}

CheckpointDef::CheckpointDef(const CheckpointDef &o)
    : name(o.name), description(o.description), parent_name(o.parent_name),
      creation_time(o.creation_time), disks(o.disks), dom(o.dom ? o.dom->clone() : nullptr) {}

CheckpointDef &CheckpointDef::operator=(const CheckpointDef &o) {
    if (this != &o) {
        CheckpointDef copy(o);
        *this = std::move(copy);
    }
    return *this;
}

Status CheckpointDef::default_post_parse(CheckpointDef &def) {
    def.creation_time = g_get_real_time() / (1000 * 1000);
    if (!def.name) def.name = std::to_string(def.creation_time);
    return ok();
}

Result<std::unique_ptr<CheckpointDef>> CheckpointDef::parse_string(std::string_view text, unsigned flags,
                                                                   const CheckpointPostParse &post_parse) {
    xml::Document doc = TRY(xml::parse(text, "(domain_checkpoint)", kDomain));
    TRY(cpcommon::expect_root(doc, "domaincheckpoint"));
    if (!(flags & kCheckpointParseSkipValidate))
        TRY(xml::validate_rng(doc, xml::schema_dir() + "/domaincheckpoint.rng", VIR_FROM_XML));
    xml::Node root = doc.root();

    auto def = std::make_unique<CheckpointDef>();
    def->name = cpcommon::xpath_string(root.child("name"));
    if (!def->name && (flags & kCheckpointParseRedefine))
        return error(VIR_ERR_XML_ERROR, "a redefined checkpoint must have a name");
    // Checked by the schema too; kept here so unvalidated input can never
    // produce a name that escapes the metadata directory.
    if (def->name && !valid_checkpoint_name(*def->name))
        return error(VIR_ERR_XML_ERROR, "invalid checkpoint name '" + *def->name + "'");
    def->description = cpcommon::xpath_string(root.child("description"));

    if (flags & kCheckpointParseRedefine) {
        auto created = cpcommon::xpath_long_long(root.child("creationTime"));
        if (!created)
            return error(VIR_ERR_INTERNAL_ERROR, "missing creationTime from existing checkpoint");
        def->creation_time = *created;
        def->parent_name = cpcommon::xpath_string(root.child("parent").child("name"));
        if (xml::Node domain = root.child("domain")) {
            def->dom = TRY(DomainDef::parse_node(domain, kDomainParseInactive | kDomainParseSkipValidate));
        }
    } else {
        TRY(post_parse ? post_parse(*def) : default_post_parse(*def));
    }

    // libvirt reads "./disks/*": every element below every <disks>.
    for (xml::Node disks : root.children("disks"))
        for (xml::Node disk : disks.children())
            def->disks.push_back(TRY(parse_disk(disk)));
    return def;
}

void CheckpointDef::assign_bitmap_names() {
    for (auto &disk : disks)
        if (disk.type == CheckpointDiskType::Bitmap && !disk.bitmap && name) disk.bitmap = *name;
}

Status CheckpointDef::align_disks() {
    if (!dom) return error(VIR_ERR_INTERNAL_ERROR, "missing domain in checkpoint");
    if (disks.size() > dom->disks.size())
        return error(VIR_ERR_CONFIG_UNSUPPORTED, "too many disk checkpoint requests for domain");
    if (dom->disks.empty())
        return error(VIR_ERR_CONFIG_UNSUPPORTED, "domain must have at least one disk to perform checkpoints");

    // With no <disks> every writable disk gets a bitmap; otherwise disks left
    // out are not checkpointed.
    CheckpointDiskType fallback = disks.empty() ? CheckpointDiskType::Bitmap : CheckpointDiskType::None;

    std::vector<std::optional<CheckpointDiskDef>> by_index(dom->disks.size());
    for (auto &requested : disks) {
        int idx = dom->disk_index_by_name(requested.name);
        if (idx < 0) return error(VIR_ERR_CONFIG_UNSUPPORTED, "no disk named '" + requested.name + "'");
        const DomainDisk &domdisk = dom->disks[size_t(idx)];
        if (by_index[size_t(idx)])
            return error(VIR_ERR_CONFIG_UNSUPPORTED, "disk '" + requested.name + "' specified twice");
        if (cpcommon::disk_unusable(domdisk) && requested.type != CheckpointDiskType::None)
            return error(VIR_ERR_CONFIG_UNSUPPORTED, "disk '" + requested.name + "' is empty or readonly");
        requested.name = domdisk.target_dev;
        by_index[size_t(idx)] = std::move(requested);
    }

    std::vector<CheckpointDiskDef> aligned;
    aligned.reserve(dom->disks.size());
    for (size_t i = 0; i < dom->disks.size(); i++) {
        if (by_index[i]) {
            aligned.push_back(std::move(*by_index[i]));
            continue;
        }
        const DomainDisk &domdisk = dom->disks[i];
        CheckpointDiskDef disk;
        disk.name = domdisk.target_dev;
        disk.type = cpcommon::disk_unusable(domdisk) ? CheckpointDiskType::None : fallback;
        aligned.push_back(std::move(disk));
    }
    disks = std::move(aligned);
    assign_bitmap_names();
    return ok();
}

void CheckpointDef::format(xml::Writer &w, unsigned flags) const {
    w.open("domaincheckpoint");
    if (name) w.text_element("name", *name);
    if (description) w.text_element("description", *description);
    if (parent_name) {
        w.open("parent");
        w.text_element("name", *parent_name);
        w.close("parent");
    }
    if (creation_time) w.text_element("creationTime", std::to_string(creation_time));
    if (!disks.empty()) {
        w.open("disks");
        for (const auto &disk : disks) {
            xml::Attrs attrs{{"name", disk.name}};
            if (disk.type != CheckpointDiskType::Default)
                attrs.emplace_back("checkpoint", std::string(type_name(disk.type)));
            if (disk.bitmap) {
                attrs.emplace_back("bitmap", *disk.bitmap);
                if ((flags & kCheckpointFormatSize) && disk.size)
                    attrs.emplace_back("size", std::to_string(*disk.size));
            }
            w.empty("disk", attrs);
        }
        w.close("disks");
    }
    if (dom && !(flags & kCheckpointFormatNoDomain)) {
        unsigned domain_flags = kDomainFormatInactive;
        if (flags & kCheckpointFormatSecure) domain_flags |= kDomainFormatSecure;
        dom->format(w, domain_flags);
    }
    w.close("domaincheckpoint");
}

std::string CheckpointDef::format(unsigned flags) const {
    xml::Writer w;
    format(w, flags);
    return w.take();
}

std::string CheckpointDef::format_metadata_file() const {
    // libvirt's QEMU driver passes no name here, so the hint is the bare command.
    return xml::file_warning("checkpoint-edit") + format(kCheckpointFormatSecure);
}

Result<std::unique_ptr<CheckpointDef>> CheckpointDef::parse_metadata_file(std::string_view text) {
    return parse_string(text, kCheckpointParseRedefine);
}

}  // namespace virtsnap::conf
