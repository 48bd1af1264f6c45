// snapshot_def.cc - <domainsnapshot> parse and format, in libvirt 9.0's order.

#include "conf/snapshot_def.hh"
#include "util/xml_file_warning.hh"

#include "util/log.hh"
#include "util/xml_doc.hh"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>

#define LOG_MODULE "conf.snapshot"

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kDom = VIR_FROM_DOMAIN_SNAPSHOT;

// Cookie children sit at depth 2 below <domainsnapshot>.
constexpr int kCookieChildIndent = 4;

constexpr const char *kStateNames[] = {"nostate", "running",  "blocked",     "paused",       "shutdown",
                                       "shutoff", "crashed",  "pmsuspended", "disk-snapshot"};

// virXPathString("string(./NAME)"): text of the first such child; "" = absent.
std::string child_string(xml::Node n, const char *name) {
    xml::Node c = n.child(name);
    return c ? c.text() : std::string();
}

// virStrToLong_ll: the whole string is one base-10 number.
std::optional<long long> parse_ll(const std::string &s) {
    if (s.empty()) return std::nullopt;
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') return std::nullopt;
    return v;
}

// Re-emits laid-out text that was built at `laid_at` under a writer at another depth.
void append_laid_out(xml::Writer &w, const std::string &text, int laid_at) {
    if (w.indent() == laid_at) {
        w.append_raw(text);
        return;
    }
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string_view line = std::string_view(text).substr(start, end - start);
        size_t lead = line.find_first_not_of(' ');
        if (lead == std::string_view::npos) lead = 0;
        w.line(line.substr(std::min(lead, size_t(laid_at))));
        start = end + 1;
    }
}

Status parse_memory(xml::Node root, unsigned flags, bool offline, SnapshotDef &def) {
    std::optional<std::string> file;
    if (xml::Node mem = root.child("memory")) {
        file = mem.attr("file");
        if (auto snap = mem.attr("snapshot")) {
            auto loc = snapshot_location_from_name(*snap);
            if (!loc || *loc == SnapshotLocation::Default)
                return fail(VIR_ERR_XML_ERROR, kDom,
                            "Invalid value for attribute 'snapshot' in element 'memory': '" + *snap + "'.");
            def.memory = *loc;
        }
        if (def.memory == SnapshotLocation::Manual)
            return fail(VIR_ERR_XML_ERROR, kDom, "'manual' memory snapshot mode not supported");
    }
    if (def.memory == SnapshotLocation::Default) {
        if (file) def.memory = SnapshotLocation::External;
        else if (flags & kSnapshotParseRedefine)
            def.memory = offline ? SnapshotLocation::No : SnapshotLocation::Internal;
    }
    if (file && def.memory != SnapshotLocation::External)
        return fail(VIR_ERR_XML_ERROR, kDom, "memory filename '" + *file + "' requires external snapshot");
    if (!file && def.memory == SnapshotLocation::External)
        return fail(VIR_ERR_XML_ERROR, kDom, "external memory snapshots require a filename");
    if (offline && def.memory != SnapshotLocation::Default && def.memory != SnapshotLocation::No)
        return fail(VIR_ERR_XML_ERROR, kDom, "memory state cannot be saved with offline or disk-only snapshot");
    if (file && (file->empty() || (*file)[0] != '/'))
        return fail(VIR_ERR_XML_ERROR, kDom, "memory snapshot file path (" + *file + ") must be absolute");
    def.memory_file = file.value_or("");
    return ok();
}

Result<std::unique_ptr<DomainDef>> parse_domain(xml::Node n, unsigned flags, const std::shared_ptr<xmlDoc> &owner) {
    if (owner) return DomainDef::parse_node(n, flags, owner);
    return DomainDef::parse_node(n, flags);
}

Status parse_redefine_part(xml::Node root, bool &offline, SnapshotDef &def, const std::shared_ptr<xmlDoc> &owner) {
    std::string created = child_string(root, "creationTime");
    auto t = parse_ll(created);
    if (!t) return fail(VIR_ERR_INTERNAL_ERROR, kDom, "missing creationTime from existing snapshot");
    def.creation_time = *t;

    for (xml::Node p : root.children("parent"))
        if (xml::Node n = p.child("name")) {
            def.parent_name = n.text();
            break;
        }

    std::string state = child_string(root, "state");
    if (state.empty()) return fail(VIR_ERR_XML_ERROR, kDom, "missing state from existing snapshot");
    auto st = snapshot_state_from_name(state);
    if (!st || *st == SnapshotState::NoState)
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDom, "Invalid state '" + state + "' in domain snapshot XML");
    def.state = *st;
    offline = def.state == SnapshotState::Shutoff || def.state == SnapshotState::DiskSnapshot;

    const unsigned domain_flags = kDomainParseInactive | kDomainParseSkipValidate;
    // libvirt looks at ./domain/@type (any <domain> with a non-empty type) but
    // parses the first <domain>.
    bool typed = false;
    for (xml::Node d : root.children("domain"))
        if (auto type = d.attr("type"); type && !type->empty()) typed = true;
    if (typed) {
        def.domain = TRY(parse_domain(root.child("domain"), domain_flags, owner));
    } else {
        VS_DEBUG("parsing older snapshot that lacks domain");
        if (xml::Node d = root.child("domain")) def.legacy_domain_uuid = Uuid::parse(child_string(d, "uuid"));
    }
    if (xml::Node inactive = root.child("inactiveDomain"))
        def.inactive_domain = TRY(parse_domain(inactive, domain_flags, owner));
    return ok();
}

}  // namespace

std::string_view snapshot_state_name(SnapshotState s) {
    auto i = size_t(s);
    return i < std::size(kStateNames) ? kStateNames[i] : "nostate";
}

std::optional<SnapshotState> snapshot_state_from_name(std::string_view s) {
    for (size_t i = 0; i < std::size(kStateNames); ++i)
        if (s == kStateNames[i]) return SnapshotState(i);
    return std::nullopt;
}

SnapshotDef::SnapshotDef(const SnapshotDef &o)
    : name(o.name), description(o.description), parent_name(o.parent_name), state(o.state),
      creation_time(o.creation_time), memory(o.memory), memory_file(o.memory_file), disks(o.disks),
      domain(o.domain ? o.domain->clone() : nullptr),
      inactive_domain(o.inactive_domain ? o.inactive_domain->clone() : nullptr),
      legacy_domain_uuid(o.legacy_domain_uuid), cookie(o.cookie), current(o.current) {}

SnapshotDef &SnapshotDef::operator=(const SnapshotDef &o) {
    if (this != &o) *this = SnapshotDef(o);
    return *this;
}

Status snapshot_default_post_parse(SnapshotDef &def) {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    def.creation_time = int64_t(ts.tv_sec);
    if (def.name.empty()) def.name = std::to_string(*def.creation_time);
    return ok();
}

Result<std::unique_ptr<SnapshotDef>> SnapshotDef::parse_string(std::string_view text, unsigned flags,
                                                               const MomentPostParse &post_parse) {
    xml::Document doc = TRY(xml::parse_with_root(text, "(domain_snapshot)", "domainsnapshot", kDom));
    if (flags & kSnapshotParseValidate)
        TRY(xml::validate_rng(doc, xml::schema_dir() + "/domainsnapshot.rng", kDom));
    xml::Node root = doc.root();
    return parse_node(root, flags, post_parse, std::shared_ptr<xmlDoc>(doc.release().release(), xmlFreeDoc));
}

Result<std::unique_ptr<SnapshotDef>> SnapshotDef::parse_node(xml::Node root, unsigned flags,
                                                             const MomentPostParse &post_parse) {
    return parse_node(root, flags, post_parse, nullptr);
}

Result<std::unique_ptr<SnapshotDef>> SnapshotDef::parse_node(xml::Node root, unsigned flags,
                                                             const MomentPostParse &post_parse,
                                                             std::shared_ptr<xmlDoc> owner) {
    if (root.name() != "domainsnapshot") return fail(VIR_ERR_XML_ERROR, kDom, "domainsnapshot");

    auto def = std::make_unique<SnapshotDef>();
    bool offline = flags & kSnapshotParseOffline;

    def->name = child_string(root, "name");
    if (def->name.empty() && (flags & kSnapshotParseRedefine))
        return fail(VIR_ERR_XML_ERROR, kDom, "a redefined snapshot must have a name");
    def->description = child_string(root, "description");

    if (flags & kSnapshotParseRedefine) {
        TRY(parse_redefine_part(root, offline, *def, owner));
    } else if (post_parse) {
        TRY(post_parse(*def));
    } else {
        TRY(snapshot_default_post_parse(*def));
    }

    TRY(parse_memory(root, flags, offline, *def));

    for (xml::Node disks : root.children("disks"))
        for (xml::Node d : disks.children()) def->disks.push_back(TRY(SnapshotDiskDef::parse(d, flags)));

    if (flags & kSnapshotParseInternal) {
        auto active = parse_ll(child_string(root, "active"));
        if (!active || *active < INT_MIN || *active > INT_MAX)
            return fail(VIR_ERR_INTERNAL_ERROR, kDom, "Could not find 'active' element");
        def->current = *active != 0;
    }

    if (!offline) {
        if (xml::Node cookie = root.child("cookie")) {
            xml::Writer w(kCookieChildIndent);
            for (xmlNode *c = cookie.raw()->children; c; c = c->next) w.node(c);
            def->cookie = w.take();
        }
    }
    return def;
}

bool SnapshotDef::is_external() const {
    if (memory == SnapshotLocation::External) return true;
    for (const auto &d : disks)
        if (d.snapshot == SnapshotLocation::External) return true;
    return false;
}

void SnapshotDef::format(xml::Writer &w, const std::optional<Uuid> &domain_uuid, unsigned flags) const {
    unsigned domain_flags = kDomainFormatInactive;
    if (flags & kSnapshotFormatSecure) domain_flags |= kDomainFormatSecure;

    w.open("domainsnapshot");
    if (!name.empty()) w.text_element("name", name);
    if (!description.empty()) w.text_element("description", description);
    if (state != SnapshotState::NoState) w.text_element("state", snapshot_state_name(state));
    if (!parent_name.empty()) {
        w.open("parent");
        w.text_element("name", parent_name);
        w.close("parent");
    }
    if (creation_time) w.text_element("creationTime", std::to_string(*creation_time));
    if (memory != SnapshotLocation::Default)
        w.empty("memory", {{"snapshot", std::string(snapshot_location_name(memory))},
                           {"file", memory_file.empty() ? std::nullopt : std::optional<std::string>(memory_file)}});
    if (!disks.empty()) {
        w.open("disks");
        for (const auto &d : disks) d.format(w);
        w.close("disks");
    }
    if (domain) {
        domain->format(w, domain_flags);
    } else if (domain_uuid) {
        w.open("domain");
        w.text_element("uuid", domain_uuid->str());
        w.close("domain");
    }
    if (inactive_domain) inactive_domain->format(w, domain_flags, "inactiveDomain");
    if (cookie) {
        w.open("cookie");
        append_laid_out(w, *cookie, kCookieChildIndent);
        w.close("cookie");
    }
    if (flags & kSnapshotFormatInternal)
        w.text_element("active", (flags & kSnapshotFormatCurrent) ? "1" : "0");
    w.close("domainsnapshot");
}

std::string SnapshotDef::format(const std::optional<Uuid> &domain_uuid, unsigned flags) const {
    xml::Writer w(0);
    format(w, domain_uuid, flags);
    return w.take();
}

std::string snapshot_metadata_warning() { return xml::file_warning("snapshot-edit"); }

std::string snapshot_metadata_file_text(const SnapshotDef &def, const Uuid &domain_uuid, bool current) {
    unsigned flags = kSnapshotFormatSecure | kSnapshotFormatInternal;
    if (current) flags |= kSnapshotFormatCurrent;
    std::string out(snapshot_metadata_warning());
    out += def.format(domain_uuid, flags);
    return out;
}

Result<std::unique_ptr<SnapshotDef>> snapshot_parse_metadata_file(std::string_view text) {
    return SnapshotDef::parse_string(text, kSnapshotParseRedefine | kSnapshotParseInternal);
}

}  // namespace virtsnap::conf
