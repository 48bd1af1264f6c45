// domain_disk.cc - one <disk> device: parse into DomainDisk and write it back
// in libvirt's element and attribute order, unknown parts kept in place.

#include "conf/domain_xml_priv.hh"

#include <array>

namespace virtsnap::conf::detail {

namespace {

constexpr std::array<std::string_view, 4> kDevices = {"disk", "cdrom", "floppy", "lun"};
constexpr std::array<std::string_view, 4> kSnapshotModes = {"no", "internal", "external", "manual"};
constexpr std::array<std::string_view, 10> kBuses = {"none", "ide", "fdc", "scsi", "virtio",
                                                     "xen",  "usb", "uml", "sata", "sd"};
// libvirt's order of the <driver> attributes it knows (virDomainDiskDefFormatDriver).
constexpr std::array<std::string_view, 12> kDriverOrder = {
    "cache", "error_policy", "rerror_policy", "io",     "ioeventfd", "event_idx",
    "copy_on_read", "discard", "iothread", "detect_zeroes", "queues", "queue_size"};

template <size_t N>
bool one_of(const std::array<std::string_view, N> &set, std::string_view v) {
    for (auto s : set)
        if (s == v) return true;
    return false;
}

// The bus libvirt infers from the target name when none is given.
std::string bus_from_dev(std::string_view dev) {
    if (dev.starts_with("hd")) return "ide";
    if (dev.starts_with("sd")) return "scsi";
    if (dev.starts_with("vd")) return "virtio";
    if (dev.starts_with("xvd")) return "xen";
    if (dev.starts_with("ubd")) return "uml";
    if (dev.starts_with("fd")) return "fdc";
    return "";
}

// The <disk> children parse_disk models (when their shape allows).
const std::set<std::string, std::less<>> kModelledChildren = {
    "driver", "source", "backingStore", "target", "readonly", "shareable",
    "transient", "serial", "boot", "alias", "address"};

bool bare(xml::Node n) { return !has_element_children(n) && n.raw()->properties == nullptr; }

std::string disk_source_name(const StorageSource &src) {
    if (src.type == StorageSource::Type::Volume) return src.volume.empty() ? "<null>" : src.volume;
    if (src.type == StorageSource::Type::Network) return src.name.empty() ? "<null>" : src.name;
    return src.path.empty() ? "<null>" : src.path;
}

}  // namespace

Result<DomainDisk> parse_disk(const ParseCtx &ctx, xml::Node n) {
    DomainDisk d;
    std::string type_name = n.attr("type").value_or("file");
    auto type = storage_type_from_name(type_name);
    if (!type || *type == StorageSource::Type::None) return invalid_attr("type", "disk", type_name);
    d.src.type = *type;
    if (auto dev = n.attr("device")) {
        if (!one_of(kDevices, *dev)) return invalid_attr("device", "disk", *dev);
        d.device = *dev;
    }
    if (auto snap = n.attr("snapshot")) {
        if (!one_of(kSnapshotModes, *snap)) return invalid_attr("snapshot", "disk", *snap);
        d.snapshot = *snap;
    }
    d.extra_attrs = attrs_except(n, {"type", "device", "snapshot"});

    std::set<std::string, std::less<>> seen;
    std::string last;
    for (xml::Node c : n.children()) {
        std::string name(c.name());
        // A repeat of a modelled child is ignored, as libvirt reads only the first
        // (kept verbatim it would turn into the modelled one on the next parse),
        // also when the first could not be modelled and is kept verbatim itself.
        if (seen.contains(name)) continue;
        if (kModelledChildren.contains(name)) seen.insert(name);
        bool modelled = false;
        {
            modelled = true;
            if (name == "driver") {
                for (const xmlAttr *a = c.raw()->properties; a; a = a->next) {
                    std::string an = attr_name(a);
                    if (an == "name") d.driver_name = attr_value(a);
                    else if (an == "type") d.src.format = attr_value(a);
                    else d.driver_attrs.emplace_back(an, attr_value(a));
                }
                for (xml::Node dc : c.children()) d.driver_children.push_back(make_verbatim(ctx, dc, ""));
            } else if (name == "source") {
                TRY(parse_source(ctx, c, d.src));
            } else if (name == "backingStore") {
                TRY(parse_backing_store(ctx, c, d.src));
            } else if (name == "target" && !has_element_children(c)) {
                d.target_dev = c.attr("dev").value_or("");
                d.target_bus = c.attr("bus").value_or("");
                d.target_extra_attrs = attrs_except(c, {"dev", "bus"});
            } else if (name == "readonly" && bare(c)) {
                d.readonly = true;
            } else if (name == "shareable" && bare(c)) {
                d.shareable = true;
            } else if (name == "transient" && bare(c)) {
                d.transient = true;
            } else if (name == "serial" && !has_element_children(c) && !c.raw()->properties) {
                d.serial = c.text();
            } else if (name == "boot" && !has_element_children(c)) {
                auto order = c.attr("order");
                if (!order)
                    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML, "Missing required attribute 'order' in element 'boot'");
                auto v = parse_ull(*order);
                if (!v || *v > 0x7fffffff)
                    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                                "Invalid value for attribute 'order' in element 'boot': '" + *order +
                                    "'. Expected non-negative integer value");
                if (*v == 0)
                    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                                "Invalid value for attribute 'order' in element 'boot': Zero is not permitted");
                d.boot_order = int(*v);
                d.boot_extra_attrs = attrs_except(c, {"order"});
            } else if (name == "alias" && !has_element_children(c) && attrs_except(c, {"name"}).empty() &&
                       c.has_attr("name")) {
                d.alias = *c.attr("name");
            } else if (name == "address" && !c.raw()->children) {
                d.address_xml = serialise(c.raw());
            } else {
                modelled = false;
            }
        }
        if (modelled) {
            last = name;
        } else {
            d.extras.push_back(make_verbatim(ctx, c, last));
        }
    }

    if (d.target_dev.empty())
        return fail(VIR_ERR_NO_TARGET, VIR_FROM_DOMAIN, disk_source_name(d.src));
    if (d.target_bus.empty()) d.target_bus = bus_from_dev(d.target_dev);
    else if (!one_of(kBuses, d.target_bus)) return invalid_attr("bus", "target", d.target_bus);
    return d;
}

void format_disk(xml::Writer &w, const DomainDisk &d, unsigned flags) {
    AttrBuilder ab(d.extra_attrs);
    ab.add("type", std::string(storage_type_name(d.src.type)));
    ab.add("device", d.device);
    for (auto k : {"model", "rawio", "sgio"}) ab.extra(k);
    if (!d.snapshot.empty()) ab.add("snapshot", d.snapshot);
    xml::Attrs attrs = ab.finish();
    w.open("disk", attrs);

    std::vector<bool> done(d.extras.size());
    emit_after(w, d.extras, done, "");

    {
        AttrBuilder db(d.driver_attrs);
        if (!d.driver_name.empty()) db.add("name", d.driver_name);
        if (!d.src.format.empty()) db.add("type", d.src.format);
        for (auto k : kDriverOrder) db.extra(k);
        xml::Attrs da = db.finish();
        if (!d.driver_children.empty()) {
            w.open("driver", da);
            for (const auto &c : d.driver_children) emit_verbatim(w, c);
            w.close("driver");
        } else if (!da.empty()) {
            w.empty("driver", da);
        }
    }
    emit_after(w, d.extras, done, "driver");
    format_source(w, d.src, flags);
    emit_after(w, d.extras, done, "source");
    format_backing_chain(w, d.src, flags);
    emit_after(w, d.extras, done, "backingStore");
    {
        AttrBuilder tb(d.target_extra_attrs);
        tb.add("dev", d.target_dev);
        if (!d.target_bus.empty()) tb.add("bus", d.target_bus);
        for (auto k : {"tray", "removable", "rotation_rate"}) tb.extra(k);
        xml::Attrs ta = tb.finish();
        w.empty("target", ta);
    }
    emit_after(w, d.extras, done, "target");
    if (d.readonly) w.empty("readonly");
    emit_after(w, d.extras, done, "readonly");
    if (d.shareable) w.empty("shareable");
    emit_after(w, d.extras, done, "shareable");
    if (d.transient) w.empty("transient");
    emit_after(w, d.extras, done, "transient");
    if (!d.serial.empty()) w.text_element("serial", d.serial);
    emit_after(w, d.extras, done, "serial");
    if (d.boot_order) {
        AttrBuilder bb(d.boot_extra_attrs);
        bb.add("order", std::to_string(*d.boot_order));
        xml::Attrs ba = bb.finish();
        w.empty("boot", ba);
    }
    emit_after(w, d.extras, done, "boot");
    if (!d.alias.empty() && (!(flags & kDomainFormatInactive) || d.alias.starts_with("ua-")))
        w.empty("alias", {{"name", d.alias}});
    emit_after(w, d.extras, done, "alias");
    if (!d.address_xml.empty()) emit_indented(w, d.address_xml);
    emit_after(w, d.extras, done, "address");
    emit_rest(w, d.extras, done);
    w.close("disk");
}

}  // namespace virtsnap::conf::detail
