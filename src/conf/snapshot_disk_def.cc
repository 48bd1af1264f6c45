// snapshot_disk_def.cc - parse and format one snapshot <disk> as libvirt 9.0 does.

#include "conf/snapshot_disk_def.hh"

#include "conf/snapshot_def.hh"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <algorithm>
#include <cstring>

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kDom = VIR_FROM_DOMAIN_SNAPSHOT;

// virStorageFileFormat names; index 0 ("none") is refused by the snapshot parser.
constexpr const char *kFormats[] = {"none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc",
                                    "vdi",  "fat", "vhd", "ploop", "cow",   "qcow", "qcow2", "qed",
                                    "vmdk"};

// virStorageNetProtocol names ("none" is index 0).
constexpr const char *kProtocols[] = {"none", "nbd", "rbd",  "sheepdog", "gluster", "iscsi", "http",
                                      "https", "ftp", "ftps", "tftp",    "ssh",     "vxhs",  "nfs"};

std::string invalid_attr(const char *attr, std::string_view element, const std::string &value) {
    return "Invalid value for attribute '" + std::string(attr) + "' in element '" + std::string(element) +
           "': '" + value + "'.";
}

bool is_format_name(const std::string &s) {
    for (size_t i = 1; i < std::size(kFormats); ++i)
        if (s == kFormats[i]) return true;
    return false;
}

bool is_protocol_name(const std::string &s) {
    for (const char *p : kProtocols)
        if (s == p) return true;
    return false;
}

// virStrToLong_ull: the whole string must be a base-10 number (strtoull rules).
std::optional<unsigned long long> parse_ull(const std::string &s) {
    if (s.empty()) return std::nullopt;
    errno = 0;
    char *end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0') return std::nullopt;
    return v;
}

// virScaleInteger with scale 1: the multiplier of a unit suffix.
std::optional<unsigned long long> unit_multiplier(const std::string &unit) {
    if (unit.empty()) return 1ULL;
    std::string u = unit;
    for (auto &c : u) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (u == "b" || u == "byte" || u == "bytes") return 1ULL;
    static const char *const kLetters = "kmgtpe";
    const char *pos = std::strchr(kLetters, u[0]);
    if (!pos || u[0] == '\0') return std::nullopt;
    int power = int(pos - kLetters) + 1;
    unsigned long long base;
    std::string rest = u.substr(1);
    if (rest.empty() || rest == "ib") base = 1024;
    else if (rest == "b") base = 1000;
    else return std::nullopt;
    unsigned long long m = 1;
    for (int i = 0; i < power; ++i) m *= base;
    return m;
}

Result<SnapshotSeclabel> parse_seclabel(xml::Node n, unsigned flags) {
    SnapshotSeclabel s;
    s.model = n.attr("model");
    if (auto relabel = n.attr("relabel")) {
        if (*relabel == "yes") s.relabel = true;
        else if (*relabel == "no") s.relabel = false;
        else return fail(VIR_ERR_XML_ERROR, kDom, "invalid security relabel value '" + *relabel + "'");
    }
    // The device-label parser reads labelskip only from live XML; snapshot parse
    // flags are passed through as domain parse flags, where REDEFINE's bit is
    // PARSE_INACTIVE, so a redefine ignores it (a libvirt quirk kept here).
    if (!(flags & kSnapshotParseRedefine)) {
        if (auto skip = n.attr("labelskip")) {
            if (*skip == "yes") s.labelskip = true;
            else if (*skip == "no") s.labelskip = false;
            else return fail(VIR_ERR_XML_ERROR, kDom, "invalid security labelskip value '" + *skip + "'");
        }
    }
    if (auto label = n.child_text("label"); label && !label->empty()) {
        if (!s.relabel)
            return fail(VIR_ERR_XML_ERROR, kDom,
                        "Cannot specify a label if relabelling is turned off. model=" +
                            (s.model ? *s.model : std::string("<null>")));
        s.label = *label;
    }
    return s;
}

Result<NetworkHost> parse_host(xml::Node n) {
    NetworkHost h;
    auto transport = n.attr("transport");
    if (transport) {
        if (*transport != "tcp" && *transport != "unix" && *transport != "rdma")
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDom, "unknown protocol transport type '" + *transport + "'");
        // tcp is the zero value and is not written back.
        if (*transport != "tcp") h.transport = *transport;
    }
    auto socket = n.attr("socket");
    bool is_unix = h.transport == "unix";
    if (is_unix && !socket) return fail(VIR_ERR_XML_ERROR, kDom, "missing socket for unix transport");
    if (!is_unix && socket)
        return fail(VIR_ERR_XML_ERROR, kDom,
                    "transport '" + (transport ? *transport : std::string("tcp")) +
                        "' does not support socket attribute");
    if (socket) h.socket = *socket;
    if (!is_unix) {
        auto name = n.attr("name");
        if (!name) return fail(VIR_ERR_XML_ERROR, kDom, "missing name for host");
        h.name = *name;
        if (auto port = n.attr("port")) {
            auto v = parse_ull(*port);
            if (!v || *v > 65535 || (*port)[0] == '-' || (*port)[0] == '+')
                return fail(VIR_ERR_INTERNAL_ERROR, kDom, "failed to parse port number '" + *port + "'");
            if (*v != 0) h.port = std::to_string(*v);
        }
    }
    return h;
}

// Source children sit at depth 4 below <domainsnapshot> (disks, disk, source,
// child); they are laid out there once, so text inside them is never re-indented.
constexpr int kSourceChildIndent = 8;

std::string verbatim(const xmlNode *n) {
    xml::Writer w(kSourceChildIndent);
    w.node(n);
    return w.take();
}

// Source children libvirt writes before the seclabels (network extras, slices).
bool written_before_seclabels(std::string_view name) {
    return name == "snapshot" || name == "config" || name == "initiator" || name == "ssl" ||
           name == "cookies" || name == "readahead" || name == "timeout" || name == "slices";
}

Status parse_source(xml::Node src, unsigned flags, SnapshotDiskDef &d) {
    using T = StorageSource::Type;
    switch (d.type) {
    case T::File:
        d.path = src.attr("file").value_or("");
        break;
    case T::Block:
        d.path = src.attr("dev").value_or("");
        break;
    case T::Network: {
        auto protocol = src.attr("protocol");
        if (!protocol)
            return fail(VIR_ERR_XML_ERROR, kDom, "Missing required attribute 'protocol' in element 'source'");
        if (!is_protocol_name(*protocol))
            return fail(VIR_ERR_XML_ERROR, kDom, invalid_attr("protocol", "source", *protocol));
        d.protocol = *protocol;
        auto name = src.attr("name");
        if (!name && d.protocol != "nbd") return fail(VIR_ERR_XML_ERROR, kDom, "missing name for disk source");
        d.path = name.value_or("");
        if (auto tls = src.attr("tls")) {
            if (*tls != "yes" && *tls != "no")
                return fail(VIR_ERR_XML_ERROR, kDom, invalid_attr("tls", "source", *tls));
            d.tls = *tls;
        }
        d.query = src.attr("query");
        for (xml::Node h : src.children("host")) d.hosts.push_back(TRY(parse_host(h)));
        break;
    }
    default:
        break;
    }
    for (xml::Node c : src.children()) {
        if (c.name() == "seclabel") d.seclabels.push_back(TRY(parse_seclabel(c, flags)));
        else if (c.name() == "host" && d.type == T::Network) continue;
        else d.source_extras.push_back(verbatim(c.raw()));
    }
    return ok();
}

void format_seclabel(xml::Writer &w, const SnapshotSeclabel &s) {
    xml::Attrs attrs{{"model", s.model}};
    if (s.labelskip) attrs.emplace_back("labelskip", "yes");
    else attrs.emplace_back("relabel", s.relabel ? "yes" : "no");
    if (!s.label) {
        w.empty("seclabel", attrs);
        return;
    }
    w.open("seclabel", attrs);
    w.text_element("label", *s.label);
    w.close("seclabel");
}

std::string_view element_name(const std::string &laid_out) {
    size_t lt = laid_out.find('<');
    size_t end = laid_out.find_first_of(" />\n", lt + 1);
    return std::string_view(laid_out).substr(lt + 1, end - lt - 1);
}

// Writes a child laid out at kSourceChildIndent; a writer at another depth
// (a disk formatted on its own) gets each line shifted.
void append_laid_out(xml::Writer &w, const std::string &laid_out) {
    if (w.indent() == kSourceChildIndent) {
        w.append_raw(laid_out);
        return;
    }
    size_t start = 0;
    while (start < laid_out.size()) {
        size_t end = laid_out.find('\n', start);
        if (end == std::string::npos) end = laid_out.size();
        std::string_view line = std::string_view(laid_out).substr(start, end - start);
        size_t strip = std::min(line.find_first_not_of(' '), size_t(kSourceChildIndent));
        w.line(line.substr(strip == std::string_view::npos ? 0 : strip));
        start = end + 1;
    }
}

}  // namespace

std::string_view snapshot_location_name(SnapshotLocation loc) {
    switch (loc) {
    case SnapshotLocation::Default: return "default";
    case SnapshotLocation::No: return "no";
    case SnapshotLocation::Internal: return "internal";
    case SnapshotLocation::External: return "external";
    case SnapshotLocation::Manual: return "manual";
    }
    return "default";
}

std::optional<SnapshotLocation> snapshot_location_from_name(std::string_view s) {
    for (auto loc : {SnapshotLocation::Default, SnapshotLocation::No, SnapshotLocation::Internal,
                     SnapshotLocation::External, SnapshotLocation::Manual})
        if (snapshot_location_name(loc) == s) return loc;
    return std::nullopt;
}

std::string_view snapshot_disk_type_name(StorageSource::Type t) {
    using T = StorageSource::Type;
    switch (t) {
    case T::None: return "none";
    case T::File: return "file";
    case T::Block: return "block";
    case T::Dir: return "dir";
    case T::Network: return "network";
    case T::Volume: return "volume";
    case T::Nvme: return "nvme";
    case T::VhostUser: return "vhostuser";
    }
    return "none";
}

Result<SnapshotDiskDef> SnapshotDiskDef::parse(xml::Node node, unsigned flags) {
    using T = StorageSource::Type;
    SnapshotDiskDef d;
    auto name = node.attr("name");
    if (!name) return fail(VIR_ERR_INTERNAL_ERROR, kDom, "missing name from disk snapshot element");

    if (auto snap = node.attr("snapshot")) {
        auto loc = snapshot_location_from_name(*snap);
        if (!loc || *loc == SnapshotLocation::Default)
            return fail(VIR_ERR_XML_ERROR, kDom, invalid_attr("snapshot", node.name(), *snap));
        d.snapshot = *loc;
    }
    if (auto type = node.attr("type")) {
        std::optional<T> t;
        for (T cand : {T::None, T::File, T::Block, T::Dir, T::Network, T::Volume, T::Nvme, T::VhostUser})
            if (snapshot_disk_type_name(cand) == *type) t = cand;
        if (!t || *t == T::None) return fail(VIR_ERR_XML_ERROR, kDom, invalid_attr("type", node.name(), *type));
        d.type = *t;
    }
    if (d.type == T::Volume || d.type == T::Dir)
        return fail(VIR_ERR_XML_ERROR, kDom,
                    "unsupported disk snapshot type '" + std::string(snapshot_disk_type_name(d.type)) + "'");

    if (flags & kSnapshotParseRedefine) d.delete_in_progress = bool(node.child("snapshotDeleteInProgress"));

    if (xml::Node src = node.child("source")) TRY(parse_source(src, flags, d));

    xml::Node driver = node.child("driver");
    if (auto type = driver.attr("type"); type && !type->empty()) {
        if (!is_format_name(*type))
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDom, "unknown disk snapshot driver '" + *type + "'");
        d.driver_type = *type;
    }

    if (xml::Node max = driver.child("metadata_cache").child("max_size")) {
        const char *what = "./driver/metadata_cache/max_size";
        std::string text = max.text();
        if (!text.empty()) {
            auto v = parse_ull(text);
            if (!v) return fail(VIR_ERR_XML_ERROR, kDom, std::string("could not parse element ") + what);
            std::string unit = max.attr("unit").value_or("");
            auto mult = unit_multiplier(unit);
            if (!mult) return fail(VIR_ERR_INVALID_ARG, kDom, "unknown suffix '" + unit + "'");
            if (*v != 0 && *mult > ULLONG_MAX / *v)
                return fail(VIR_ERR_OVERFLOW, kDom, "value too large: " + text + unit);
            unsigned long long bytes = *v * *mult;
            if (bytes < 1)
                return fail(VIR_ERR_XML_ERROR, kDom,
                            std::string("value of '") + what + "' is too small (0)");
            d.metadata_cache_max_size = bytes;
        }
    }

    bool local = d.type == T::File || d.type == T::Block;
    if (local && !d.path.empty() && d.path[0] != '/')
        return fail(VIR_ERR_XML_ERROR, kDom, "disk snapshot image path '" + d.path + "' must be absolute");

    if (d.snapshot == SnapshotLocation::Default && (!d.path.empty() || !d.driver_type.empty()))
        d.snapshot = SnapshotLocation::External;

    d.name = *name;
    return d;
}

void SnapshotDiskDef::format(xml::Writer &w) const {
    using T = StorageSource::Type;
    // Always written, also with name='': libvirt skips only a disk without
    // a name (NULL), which neither its parser nor its alignment produces.
    xml::Attrs attrs{{"name", name}};
    if (snapshot != SnapshotLocation::Default)
        attrs.emplace_back("snapshot", std::string(snapshot_location_name(snapshot)));

    xml::Writer child(w.indent() + 2);
    if (delete_in_progress) child.empty("snapshotDeleteInProgress");
    if (!path.empty() || !driver_type.empty()) {
        attrs.emplace_back("type", std::string(snapshot_disk_type_name(type)));

        xml::Element drv(child, "driver");
        drv.attr("type", driver_type.empty() ? std::nullopt : std::optional<std::string>(driver_type));
        if (metadata_cache_max_size > 0) {
            xml::Writer &dc = drv.children();
            dc.open("metadata_cache");
            dc.text_element("max_size", std::to_string(metadata_cache_max_size), {{"unit", "bytes"}});
            dc.close("metadata_cache");
        }
        drv.finish();

        xml::Element src(child, "source");
        if (type == T::File) src.attr("file", path.empty() ? std::nullopt : std::optional<std::string>(path));
        else if (type == T::Block) src.attr("dev", path.empty() ? std::nullopt : std::optional<std::string>(path));
        else if (type == T::Network) {
            // A network disk with a driver but no <source> has no protocol;
            // libvirt then writes its name for "none" (and cannot read it back).
            src.attr("protocol", protocol.empty() ? std::string("none") : protocol);
            src.attr("name", path.empty() ? std::nullopt : std::optional<std::string>(path));
            src.attr("query", query);
            src.attr("tls", tls);
        }
        xml::Writer &sc = src.children();
        for (const auto &h : hosts) {
            sc.empty("host", {{"name", h.name.empty() ? std::nullopt : std::optional<std::string>(h.name)},
                              {"port", h.port.empty() ? std::nullopt : std::optional<std::string>(h.port)},
                              {"transport", h.transport.empty() ? std::nullopt : std::optional<std::string>(h.transport)},
                              {"socket", h.socket.empty() ? std::nullopt : std::optional<std::string>(h.socket)}});
        }
        for (const auto &x : source_extras)
            if (written_before_seclabels(element_name(x))) append_laid_out(sc, x);
        for (const auto &s : seclabels) format_seclabel(sc, s);
        for (const auto &x : source_extras)
            if (!written_before_seclabels(element_name(x))) append_laid_out(sc, x);
        src.finish();
    }

    if (child.empty_output()) {
        w.empty("disk", attrs);
        return;
    }
    w.open("disk", attrs);
    w.append_raw(child.str());
    w.close("disk");
}

}  // namespace virtsnap::conf
