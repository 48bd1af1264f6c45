// storage_source.cc - a disk's <source> and its <backingStore> chain: the
// deep copy, the type names, and libvirt's XML for both.

#include "conf/domain_xml_priv.hh"

#include <array>
#include <cstdio>

namespace virtsnap::conf {

StorageSource::StorageSource(const StorageSource &o)
    : type(o.type), path(o.path), protocol(o.protocol), name(o.name), hosts(o.hosts), pool(o.pool),
      volume(o.volume), nvme(o.nvme), vhostuser_path(o.vhostuser_path), format(o.format), readonly(o.readonly),
      index(o.index),
      backing(o.backing ? std::make_unique<StorageSource>(*o.backing) : nullptr),
      backing_terminated(o.backing_terminated), source_extras(o.source_extras),
      source_extra_attrs(o.source_extra_attrs), backing_extra_attrs(o.backing_extra_attrs),
      backing_extras(o.backing_extras) {}

StorageSource &StorageSource::operator=(const StorageSource &o) {
    if (this != &o) {
        StorageSource copy(o);
        *this = std::move(copy);
    }
    return *this;
}

namespace {

// libvirt's virStorageType names, in enum order (Type::None is "none").
constexpr std::array<std::string_view, 8> kTypeNames = {"none",    "file",   "block", "dir",
                                                        "network", "volume", "nvme",  "vhostuser"};

// libvirt's virStorageNetProtocol names (without "none").
constexpr std::array<std::string_view, 13> kProtocols = {"nbd",  "rbd",  "sheepdog", "gluster", "iscsi",
                                                         "http", "https", "ftp",     "ftps",    "tftp",
                                                         "ssh",  "vxhs", "nfs"};

// The attribute that names the storage for local types.
const char *path_attr(StorageSource::Type t) {
    switch (t) {
    case StorageSource::Type::File: return "file";
    case StorageSource::Type::Block: return "dev";
    case StorageSource::Type::Dir: return "dir";
    case StorageSource::Type::None:
    case StorageSource::Type::Network:
    case StorageSource::Type::Volume:
    case StorageSource::Type::Nvme:
    case StorageSource::Type::VhostUser: return nullptr;
    }
    return nullptr;
}

// virPCIDeviceAddressParseXML: domain, bus, slot and function in any C base,
// the range checks libvirt makes on a non-empty address.
Status parse_pci_address(const detail::ParseCtx &ctx, xml::Node n, NvmeSource &nvme) {
    PciAddress &a = nvme.address;
    for (auto [attr, field] : {std::pair<const char *, unsigned *>{"domain", &a.domain},
                               {"bus", &a.bus},
                               {"slot", &a.slot},
                               {"function", &a.function}}) {
        auto text = n.attr(attr);
        if (!text) continue;
        auto v = detail::c_strtoul(*text, 0, true);
        if (!v || *v > 0xffffffffULL)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                        "Invalid value for attribute '" + std::string(attr) + "' in element 'address': '" + *text +
                            "'. Expected non-negative integer value");
        *field = unsigned(*v);
    }
    auto hex = [](unsigned v) {
        char buf[16];
        std::snprintf(buf, sizeof(buf), "0x%x", v);
        return std::string(buf);
    };
    bool empty = a.domain == 0 && a.bus == 0 && a.slot == 0;
    if (!empty) {
        if (a.bus > 0xff)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_NONE,
                        "Invalid PCI address bus='" + hex(a.bus) + "', must be <= 0xFF");
        if (a.slot > 0x1f)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_NONE,
                        "Invalid PCI address slot='" + hex(a.slot) + "', must be <= 0x1F");
        if (a.function > 7)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_NONE,
                        "Invalid PCI address function=" + hex(a.function) + ", must be <= 7");
    }
    nvme.address_extra_attrs = detail::attrs_except(n, {"domain", "bus", "slot", "function"});
    for (xml::Node c : n.children()) nvme.address_children.push_back(detail::make_verbatim(ctx, c, ""));
    return ok();
}

// virDomainDiskSourceNVMeParse, in libvirt's order of checks.
Status parse_nvme_source(const detail::ParseCtx &ctx, xml::Node n, StorageSource &src) {
    auto type = n.attr("type");
    if (!type) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing 'type' attribute to disk source");
    if (*type != "pci") return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "unsupported source type '" + *type + "'");
    auto ns = n.attr("namespace");
    if (!ns) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing 'namespace' attribute to disk source");
    auto ns_value = detail::c_strtoul(*ns, 10, false);
    if (!ns_value) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "malformed namespace '" + *ns + "'");
    NvmeSource nvme;
    nvme.namespace_id = *ns_value;
    if (auto managed = n.attr("managed")) {
        if (*managed != "yes" && *managed != "no") return detail::invalid_attr("managed", "source", *managed);
        nvme.managed = *managed;
    }
    xml::Node address = n.child("address");
    if (!address) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "NVMe disk source is missing address");
    TRY(parse_pci_address(ctx, address, nvme));
    src.nvme = std::move(nvme);
    return ok();
}

// virDomainDiskSourceVHostUserParse.
Status parse_vhostuser_source(xml::Node n, StorageSource &src) {
    auto type = n.attr("type");
    if (!type) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing 'type' attribute for vhostuser disk source");
    if (*type != "unix")
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "invalid 'type' attribute for vhostuser disk source");
    auto path = n.attr("path");
    if (!path) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing 'path' attribute for vhostuser disk source");
    src.vhostuser_path = *path;
    return ok();
}

// virPCIDeviceAddressFormat without the type attribute, as inside an NVMe source.
void format_pci_address(xml::Writer &w, const NvmeSource &nvme) {
    const PciAddress &a = nvme.address;
    auto hex = [](unsigned v, int digits) {
        char buf[24];
        std::snprintf(buf, sizeof(buf), "0x%0*x", digits, v);
        return std::string(buf);
    };
    detail::AttrBuilder ab(nvme.address_extra_attrs);
    ab.add("domain", hex(a.domain, 4));
    ab.add("bus", hex(a.bus, 2));
    ab.add("slot", hex(a.slot, 2));
    // libvirt prints "0x%d" here. The same for 0-9, and a function above 7 is
    // only accepted in an all-zero address, where libvirt's output would read
    // back as another number; hex keeps every accepted address a fixed point.
    ab.add("function", hex(a.function, 1));
    xml::Attrs attrs = ab.finish();
    if (nvme.address_children.empty()) {
        w.empty("address", attrs);
        return;
    }
    w.open("address", attrs);
    for (const auto &c : nvme.address_children) detail::emit_verbatim(w, c);
    w.close("address");
}

}  // namespace

std::string_view storage_type_name(StorageSource::Type t) { return kTypeNames[size_t(t)]; }

std::optional<StorageSource::Type> storage_type_from_name(std::string_view s) {
    for (size_t i = 0; i < kTypeNames.size(); ++i)
        if (kTypeNames[i] == s) return StorageSource::Type(i);
    return std::nullopt;
}

namespace detail {

Status parse_source(const ParseCtx &ctx, xml::Node n, StorageSource &src) {
    using T = StorageSource::Type;
    std::vector<std::string_view> known;
    if (const char *pa = path_attr(src.type)) {
        src.path = n.attr(pa).value_or("");
        known.push_back(pa);
    } else if (src.type == T::Network) {
        auto protocol = n.attr("protocol");
        if (!protocol)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                        "Missing required attribute 'protocol' in element 'source'");
        bool ok = false;
        for (auto p : kProtocols)
            if (p == *protocol) ok = true;
        if (!ok) return invalid_attr("protocol", "source", *protocol);
        src.protocol = *protocol;
        src.name = n.attr("name").value_or("");
        known = {"protocol", "name"};
    } else if (src.type == T::Volume) {
        src.pool = n.attr("pool").value_or("");
        src.volume = n.attr("volume").value_or("");
        known = {"pool", "volume"};
    } else if (src.type == T::Nvme) {
        TRY(parse_nvme_source(ctx, n, src));
        known = {"type", "managed", "namespace"};
    } else if (src.type == T::VhostUser) {
        TRY(parse_vhostuser_source(n, src));
        known = {"type", "path"};
    }
    for (const xmlAttr *a = n.raw()->properties; a; a = a->next) {
        std::string an = attr_name(a);
        bool is_known = false;
        for (auto k : known)
            if (k == an) is_known = true;
        if (!is_known) src.source_extra_attrs.emplace_back(std::move(an), attr_value(a));
    }

    std::string last;
    int ordinal = 0;
    for (xml::Node c : n.children()) {
        // The first <address> is the controller's (modelled above); libvirt ignores any further one.
        if (src.type == T::Nvme && c.name() == "address") continue;
        bool plain_host = src.type == T::Network && c.name() == "host" && !has_element_children(c) &&
                          attrs_except(c, {"name", "port", "transport", "socket"}).empty();
        if (!plain_host) {
            src.source_extras.push_back(make_verbatim(ctx, c, last, last == "host" ? ordinal - 1 : 0));
            continue;
        }
        NetworkHost h;
        h.name = c.attr("name").value_or("");
        h.port = c.attr("port").value_or("");
        h.transport = c.attr("transport").value_or("");
        h.socket = c.attr("socket").value_or("");
        if (!h.port.empty()) {
            auto port = parse_ull(h.port);
            if (!port || *port > 65535)
                return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "failed to parse port number '" + h.port + "'");
        }
        // tcp is libvirt's default transport and never written back.
        if (h.transport == "tcp") h.transport.clear();
        src.hosts.push_back(std::move(h));
        last = "host";
        ++ordinal;
    }
    return ok();
}

void format_source(xml::Writer &w, const StorageSource &src, unsigned flags) {
    using T = StorageSource::Type;
    AttrList extras = src.source_extra_attrs;
    if (flags & kDomainFormatInactive) std::erase_if(extras, [](const auto &kv) { return kv.first == "index"; });
    AttrBuilder ab(extras);
    // libvirt's order (virDomainDiskSourceFormat); attributes it does not
    // know follow in the order the document had them.
    if (const char *pa = path_attr(src.type)) {
        if (!src.path.empty()) ab.add(pa, src.path);
        if (src.type == T::File) ab.extra("fdgroup");
    } else if (src.type == T::Network && !src.protocol.empty()) {  // empty: the disk had no <source>
        ab.add("protocol", src.protocol);
        if (!src.name.empty()) ab.add("name", src.name);
        for (auto k : {"query", "tls", "tlsHostname", "tlsFromConfig"}) ab.extra(k);
    } else if (src.type == T::Volume) {
        if (!src.pool.empty()) ab.add("pool", src.pool);
        if (!src.volume.empty()) ab.add("volume", src.volume);
        ab.extra("mode");
    } else if (src.type == T::Nvme && src.nvme) {
        ab.add("type", "pci");
        if (!src.nvme->managed.empty()) ab.add("managed", src.nvme->managed);
        ab.add("namespace", std::to_string(src.nvme->namespace_id));
    } else if (src.type == T::VhostUser && src.vhostuser_path) {
        ab.add("type", "unix");
        ab.add("path", *src.vhostuser_path);
    }
    ab.extra("startupPolicy");
    ab.extra("index");
    xml::Attrs attrs = ab.finish();

    xml::Writer children(w.indent() + 2);
    std::vector<bool> done(src.source_extras.size());
    if (src.type == T::Nvme && src.nvme) {
        // libvirt writes the controller address first; kept children follow in document order.
        format_pci_address(children, *src.nvme);
        emit_rest(children, src.source_extras, done);
    }
    emit_after(children, src.source_extras, done, "");
    for (size_t i = 0; i < src.hosts.size(); ++i) {
        const NetworkHost &h = src.hosts[i];
        children.empty("host", {{"name", h.name.empty() ? std::nullopt : std::optional(h.name)},
                                {"port", h.port.empty() ? std::nullopt : std::optional(h.port)},
                                {"transport", h.transport.empty() ? std::nullopt : std::optional(h.transport)},
                                {"socket", h.socket.empty() ? std::nullopt : std::optional(h.socket)}});
        emit_after(children, src.source_extras, done, "host", int(i));
    }
    emit_rest(children, src.source_extras, done);

    if (children.empty_output()) {
        if (!attrs.empty()) w.empty("source", attrs);
        return;
    }
    w.open("source", attrs);
    w.append_raw(children.str());
    w.close("source");
}

Status parse_backing_store(const ParseCtx &ctx, xml::Node n, StorageSource &parent) {
    auto type_name = n.attr("type");
    if (!type_name) {
        // An explicit empty <backingStore/>: the chain is known to end here.
        parent.backing_terminated = true;
        parent.backing.reset();
        return ok();
    }
    auto type = storage_type_from_name(*type_name);
    if (!type || *type == StorageSource::Type::None)
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "unknown storage source type '" + *type_name + "'");
    auto layer = std::make_unique<StorageSource>();
    layer->type = *type;
    layer->readonly = true;
    xml::Node format = n.child("format");
    auto format_type = format ? format.attr("type") : std::nullopt;
    if (!format_type) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "missing disk backing store format");
    layer->format = *format_type;
    if (!(ctx.flags & kDomainParseInactive)) {
        if (auto idx = n.attr("index")) {
            auto v = parse_ull(*idx);
            if (!v || *v > 0x7fffffff)
                return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "invalid disk index '" + *idx + "'");
            layer->index = int(*v);
        }
    }
    layer->backing_extra_attrs = attrs_except(n, {"type", "index"});
    xml::Node source = n.child("source");
    if (source) TRY(parse_source(ctx, source, *layer));
    bool seen_format = false, seen_source = false, seen_backing = false;
    std::string last;
    for (xml::Node c : n.children()) {
        std::string_view cn = c.name();
        bool *seen = cn == "format" ? &seen_format : cn == "source" ? &seen_source
                                   : cn == "backingStore"        ? &seen_backing
                                                                 : nullptr;
        if (seen && !*seen && (cn != "format" || c.raw() == format.raw())) {
            *seen = true;
            if (cn == "backingStore") TRY(parse_backing_store(ctx, c, *layer));
            last = std::string(cn);
            continue;
        }
        if (seen && cn != "format") continue;   // later duplicates are ignored, as libvirt does
        layer->backing_extras.push_back(make_verbatim(ctx, c, last));
    }
    parent.backing = std::move(layer);
    parent.backing_terminated = false;
    return ok();
}

namespace {

void format_backing_layer(xml::Writer &w, const StorageSource &layer, unsigned flags) {
    AttrBuilder ab(layer.backing_extra_attrs);
    ab.add("type", std::string(storage_type_name(layer.type)));
    if (layer.index && *layer.index != 0 && !(flags & kDomainFormatInactive))
        ab.add("index", std::to_string(*layer.index));
    xml::Attrs attrs = ab.finish();
    w.open("backingStore", attrs);
    std::vector<bool> done(layer.backing_extras.size());
    emit_after(w, layer.backing_extras, done, "");
    if (!layer.format.empty()) w.empty("format", {{"type", layer.format}});
    emit_after(w, layer.backing_extras, done, "format");
    format_source(w, layer, flags);
    emit_after(w, layer.backing_extras, done, "source");
    format_backing_chain(w, layer, flags);
    emit_after(w, layer.backing_extras, done, "backingStore");
    emit_rest(w, layer.backing_extras, done);
    w.close("backingStore");
}

}  // namespace

void format_backing_chain(xml::Writer &w, const StorageSource &top, unsigned flags) {
    if (top.backing) format_backing_layer(w, *top.backing, flags);
    else if (top.backing_terminated) w.empty("backingStore");
}

}  // namespace detail
}  // namespace virtsnap::conf
