// domain_device.cc - devices other than disks (controller, interface, serial,
// console, channel, input, graphics, video, memballoon, rng and the rest
// libvirt knows). The command line builder reads their kind and top-level
// attributes; the element itself is kept whole and written back in place,
// with libvirt's top-level attribute order and graphics passwords hidden
// unless the caller may see secrets.

#include "conf/domain_xml_priv.hh"

#include <array>
#include <cstring>

namespace virtsnap::conf::detail {

namespace {

// libvirt's order of device kinds inside <devices> (virDomainDefFormatInternal);
// disks and the emulator come first and are handled by the caller.
constexpr std::array<std::string_view, 29> kDeviceOrder = {
    "controller", "lease",     "filesystem", "interface", "smartcard", "serial",   "parallel", "console",
    "channel",    "input",     "tpm",        "graphics",  "sound",     "audio",    "video",    "hostdev",
    "redirdev",   "redirfilter", "hub",      "watchdog",  "memballoon", "rng",     "nvram",    "panic",
    "shmem",      "memory",    "iommu",      "vsock",     "crypto"};

// libvirt's order for the top-level attributes of some devices; others get
// `type` first and keep document order for the rest.
std::vector<std::string_view> attr_order(std::string_view kind) {
    if (kind == "controller") return {"type", "index", "model", "ports", "vectors", "maxGrantFrames", "maxEventChannels"};
    if (kind == "input") return {"type", "bus", "model"};
    if (kind == "memballoon") return {"model", "autodeflate", "freePageReporting"};
    if (kind == "rng" || kind == "sound") return {"model"};
    if (kind == "interface") return {"type", "trustGuestRxFilters"};
    if (kind == "watchdog") return {"model", "action"};
    if (kind == "hostdev") return {"mode", "type", "managed"};
    if (kind == "audio") return {"id", "type"};
    return {"type"};
}

bool has_text(const xmlNode *n) {
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_CDATA_SECTION_NODE) return true;
        if (c->type != XML_TEXT_NODE) continue;
        for (const xmlChar *p = c->content; p && *p; ++p)
            if (!std::strchr(" \t\r\n", *p)) return true;
    }
    return false;
}

}  // namespace

int device_rank(std::string_view kind) {
    for (size_t i = 0; i < kDeviceOrder.size(); ++i)
        if (kDeviceOrder[i] == kind) return int(i);
    return -1;
}

DomainDevice parse_device(const ParseCtx &ctx, xml::Node n) {
    DomainDevice d;
    d.kind = std::string(n.name());
    d.attr_list = attrs_except(n, {});
    for (const auto &[k, v] : d.attr_list) d.attrs.emplace(k, v);
    d.xml = serialise(n.raw());
    d.owner = ctx.owner;
    d.node = n.raw();
    return d;
}

void format_device(xml::Writer &w, const DomainDevice &d, unsigned flags) {
    bool hide_passwd = d.kind == "graphics" && !(flags & kDomainFormatSecure) && d.attrs.contains("passwd");
    if (!d.node) {
        // Built by hand: only the text form exists.
        emit_indented(w, d.xml);
        return;
    }
    if (has_text(d.node) || d.node->nsDef || d.node->ns) {
        // Unusual shapes are written exactly as parsed (minus the password).
        if (!hide_passwd) {
            w.node(d.node);
            return;
        }
        std::unique_ptr<xmlNode, CFree<xmlFreeNode>> copy(xmlCopyNode(const_cast<xmlNode *>(d.node), 1));
        xmlUnsetProp(copy.get(), reinterpret_cast<const xmlChar *>("passwd"));
        w.node(copy.get());
        return;
    }
    AttrList attrs = d.attr_list;
    if (hide_passwd) std::erase_if(attrs, [](const auto &kv) { return kv.first == "passwd"; });
    AttrBuilder ab(attrs);
    for (auto k : attr_order(d.kind)) ab.extra(k);
    xml::Attrs out = ab.finish();
    bool any_child = false;
    for (const xmlNode *c = d.node->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE || c->type == XML_COMMENT_NODE) any_child = true;
    if (!any_child) {
        w.empty(d.kind, out);
        return;
    }
    w.open(d.kind, out);
    for (const xmlNode *c = d.node->children; c; c = c->next) w.node(c);
    w.close(d.kind);
}

}  // namespace virtsnap::conf::detail
