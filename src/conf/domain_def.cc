// domain_def.cc - the <domain> document: top-level parse and format, libvirt's
// defaults and checks for what is modelled, disk lookup. Disks, other devices
// and storage sources live in their own files (domain_disk.cc,
// domain_device.cc, storage_source.cc).

#include "conf/domain_def.hh"

#include "conf/domain_xml_priv.hh"

#include <algorithm>
#include <array>
#include <climits>
#include <set>

namespace virtsnap::conf {

using namespace detail;

namespace {

// libvirt's virDomainVirtType names (VIR_DOMAIN_VIRT_NONE excluded).
constexpr std::array<std::string_view, 16> kVirtTypes = {"qemu", "kqemu",  "kvm",       "xen",
                                                         "lxc",  "uml",    "openvz",    "test",
                                                         "vmware", "hyperv", "vbox",    "phyp",
                                                         "parallels", "bhyve", "vz",    "ch"};
constexpr std::array<std::string_view, 6> kOsTypes = {"hvm", "xen", "linux", "exe", "uml", "xenpvh"};
constexpr std::array<std::string_view, 4> kLifecycle = {"destroy", "restart", "rename-restart", "preserve"};
constexpr std::array<std::string_view, 6> kCrashLifecycle = {"destroy", "restart", "rename-restart",
                                                             "preserve", "coredump-destroy", "coredump-restart"};

template <size_t N>
bool one_of(const std::array<std::string_view, N> &set, std::string_view v) {
    return std::find(set.begin(), set.end(), v) != set.end();
}

bool plain_text_element(xml::Node n) { return !has_element_children(n) && !n.raw()->properties; }

// virScaleInteger's unit suffixes: bytes, SI (KB, MB ...) and binary (k, KiB, M ...).
std::optional<unsigned long long> unit_scale(std::string_view unit) {
    auto lower = [](char c) { return char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); };
    std::string u;
    for (char c : unit) u += lower(c);
    if (u.empty()) return 1024;
    if (u == "b" || u == "byte" || u == "bytes") return 1;
    unsigned long long base;
    if (u.size() == 1 || u.substr(1) == "ib") base = 1024;
    else if (u.size() == 2 && u[1] == 'b') base = 1000;
    else return std::nullopt;
    static constexpr std::string_view kPrefixes = "kmgtpe";
    size_t pos = kPrefixes.find(u[0]);
    if (pos == std::string_view::npos) return std::nullopt;
    unsigned long long scale = 1;
    for (size_t i = 0; i <= pos; ++i) scale *= base;
    return scale;
}

// libvirt's virDomainParseMemory: a scaled value rounded up to KiB.
Result<uint64_t> parse_memory(xml::Node n, std::string_view xpath) {
    std::string text = n.text();
    auto value = parse_ull(text);
    if (!value)
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                    "Invalid value '" + text + "' for element or attribute '" + std::string(xpath) + "'");
    std::string unit = n.attr("unit").value_or("");
    auto scale = unit_scale(unit);
    if (!scale) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "unknown suffix '" + unit + "'");
    const unsigned long long limit = LLONG_MAX;
    if (*value > limit / *scale)
        return fail(VIR_ERR_OVERFLOW, VIR_FROM_NONE, "value too large: " + text + unit);
    unsigned long long bytes = *value * *scale;
    return uint64_t((bytes + 1023) / 1024);
}

// A cpuset in libvirt's canonical form ("0-3,8"), or nullopt when unparsable.
std::optional<std::string> canonical_cpuset(std::string_view s) {
    std::set<unsigned> cpus, excluded;
    size_t pos = 0;
    auto skip_spaces = [&] {
        while (pos < s.size() && s[pos] == ' ') ++pos;
    };
    auto number = [&]() -> std::optional<unsigned> {
        size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        auto v = parse_ull(s.substr(start, pos - start));
        if (!v || *v >= 16384) return std::nullopt;
        return unsigned(*v);
    };
    while (true) {
        skip_spaces();
        bool neg = pos < s.size() && s[pos] == '^';
        if (neg) ++pos;
        auto first = number();
        if (!first) return std::nullopt;
        unsigned last = *first;
        if (!neg && pos < s.size() && s[pos] == '-') {
            ++pos;
            auto l = number();
            if (!l || *l < *first) return std::nullopt;
            last = *l;
        }
        for (unsigned c = *first; c <= last; ++c) (neg ? excluded : cpus).insert(c);
        skip_spaces();
        if (pos == s.size()) break;
        if (s[pos] != ',') return std::nullopt;
        ++pos;
    }
    for (unsigned c : excluded) cpus.erase(c);
    if (cpus.empty()) return std::nullopt;
    std::string out;
    for (auto it = cpus.begin(); it != cpus.end();) {
        unsigned start = *it, end = *it;
        ++it;
        while (it != cpus.end() && *it == end + 1) end = *it++;
        if (!out.empty()) out += ',';
        out += std::to_string(start);
        if (end != start) out += "-" + std::to_string(end);
    }
    return out;
}

// libvirt keeps only namespaced elements in <metadata>, one per namespace.
void sanitize_metadata(xmlNode *md) {
    xmlNode *child = md->children;
    while (child) {
        if (child->type != XML_ELEMENT_NODE || !child->ns || !child->ns->href) {
            xmlNode *drop = child;
            child = child->next;
            xmlUnlinkNode(drop);
            xmlFreeNode(drop);
            continue;
        }
        for (xmlNode *next = child->next; next;) {
            xmlNode *cur = next;
            next = next->next;
            if (cur->type == XML_ELEMENT_NODE && cur->ns && cur->ns->href &&
                xmlStrEqual(cur->ns->href, child->ns->href)) {
                xmlUnlinkNode(cur);
                xmlFreeNode(cur);
            }
        }
        child = child->next;
    }
}

// Kept elements are written back with CDATA sections as escaped text (the
// writer's layout), so a whitespace-only CDATA section would come back as
// blank text, which the writer drops: "<x><![CDATA[ ]]></x>" would turn into
// "<x/>" on the second round. Reading every CDATA section as the text node it
// will be written as makes the first round write "<x/>" already. <metadata> is
// not touched: it is dumped by libxml2, which keeps CDATA as libvirt does.
void cdata_to_text(xmlNode *parent) {
    for (xmlNode *c = parent->children; c;) {
        xmlNode *next = c->next;
        if (c->type == XML_CDATA_SECTION_NODE) {
            xmlNode *text = xmlNewDocText(c->doc, c->content);
            if (text) {
                xmlReplaceNode(c, text);
                xmlFreeNode(c);
            }
        } else if (c->type == XML_ELEMENT_NODE) {
            cdata_to_text(c);
        }
        c = next;
    }
}

std::string dump_metadata(xmlDoc *doc, const xmlNode *node, int level) {
    std::unique_ptr<xmlBuffer, CFree<xmlBufferFree>> buf(xmlBufferCreate());
    int saved = xmlIndentTreeOutput;
    xmlIndentTreeOutput = 1;
    xmlNodeDump(buf.get(), doc, const_cast<xmlNode *>(node), level, 1);
    xmlIndentTreeOutput = saved;
    return reinterpret_cast<const char *>(xmlBufferContent(buf.get()));
}

Status parse_metadata(DomainDef &def, xml::Node n) {
    std::shared_ptr<xmlDoc> mdoc(xmlNewDoc(reinterpret_cast<const xmlChar *>("1.0")), xmlFreeDoc);
    if (!mdoc) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
    xmlNode *copy = xmlDocCopyNode(n.raw(), mdoc.get(), 1);
    if (!copy) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
    xmlDocSetRootElement(mdoc.get(), copy);
    sanitize_metadata(copy);
    def.metadata_xml = dump_metadata(mdoc.get(), copy, 0);
    def.metadata_dump = def.metadata_xml;
    def.metadata_owner = std::move(mdoc);
    def.metadata_node = copy;
    return ok();
}

Status parse_vcpu(DomainDef &def, xml::Node n) {
    auto count = parse_ull(n.text());
    if (!count || *count > UINT_MAX)
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "maximum vcpus count must be an integer");
    def.vcpus = unsigned(*count);
    if (auto cur = n.attr("current")) {
        auto v = parse_ull(*cur);
        if (!v || *v > UINT_MAX)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "current vcpus count must be an integer");
        if (*v != 0) def.vcpus_current = unsigned(*v);
    }
    if (auto placement = n.attr("placement")) {
        if (*placement != "static" && *placement != "auto")
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                        "Unsupported CPU placement mode '" + *placement + "'");
        def.vcpu_placement = *placement;
    }
    if (auto cpuset = n.attr("cpuset")) def.vcpu_cpuset = canonical_cpuset(*cpuset).value_or(*cpuset);
    def.vcpu_extra_attrs = attrs_except(n, {"current", "placement", "cpuset"});
    return ok();
}

// The <os> children parse_os models (when their shape allows).
const std::set<std::string, std::less<>> kOsModelled = {"type", "loader", "nvram", "kernel", "initrd", "cmdline", "dtb"};

Status parse_os(const ParseCtx &ctx, OsDef &os, xml::Node n) {
    os.firmware = n.attr("firmware").value_or("");
    os.os_attrs = attrs_except(n, {"firmware"});
    std::set<std::string, std::less<>> seen;
    std::string last;
    int boot_ordinal = 0;
    bool have_type = false;
    for (xml::Node c : n.children()) {
        std::string name(c.name());
        bool modelled = false;
        if (name == "boot" && !has_element_children(c) && attrs_except(c, {"dev"}).empty() && c.has_attr("dev")) {
            os.boot_devs.push_back(*c.attr("dev"));
            last = "boot";
            ++boot_ordinal;
            continue;
        }
        // libvirt reads the first of each; a repeat is dropped even when the
        // first one is kept verbatim (it could otherwise take its place on
        // the next round).
        if (kOsModelled.contains(name)) {
            if (seen.contains(name)) continue;
            seen.insert(name);
        }
        // <type> is always modelled, from its string value as libvirt reads it.
        if (kOsModelled.contains(name) && (name == "type" || !has_element_children(c))) {
            modelled = true;
            if (name == "type") {
                os.type = c.text();
                os.arch = c.attr("arch").value_or("");
                os.machine = c.attr("machine").value_or("");
                os.type_extra_attrs = attrs_except(c, {"arch", "machine"});
                have_type = true;
            } else if (name == "loader") {
                os.loader_path = c.text();
                os.loader_readonly = c.attr("readonly").value_or("");
                os.loader_type = c.attr("type").value_or("");
                os.loader_secure = c.attr("secure").value_or("");
                os.loader_extra_attrs = attrs_except(c, {"readonly", "type", "secure"});
            } else if (name == "nvram") {
                os.nvram_path = c.text();
                os.nvram_template = c.attr("template").value_or("");
                os.nvram_extra_attrs = attrs_except(c, {"template"});
            } else if ((name == "kernel" || name == "initrd" || name == "cmdline" || name == "dtb") &&
                       plain_text_element(c)) {
                (name == "kernel" ? os.kernel : name == "initrd" ? os.initrd : name == "cmdline" ? os.cmdline : os.dtb) =
                    c.text();
            } else {
                modelled = false;
            }
        }
        if (modelled) {
            last = name;
        } else {
            os.extras.push_back(make_verbatim(ctx, c, last, last == "boot" ? boot_ordinal - 1 : 0));
        }
    }
    if (!have_type || os.type.empty())
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "an os <type> must be specified");
    if (!one_of(kOsTypes, os.type))
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN, "unknown OS type '" + os.type + "'");
    return ok();
}

void format_os(xml::Writer &w, const OsDef &os) {
    AttrBuilder ab(os.os_attrs);
    if (!os.firmware.empty()) ab.add("firmware", os.firmware);
    xml::Attrs attrs = ab.finish();
    w.open("os", attrs);
    std::vector<bool> done(os.extras.size());
    emit_after(w, os.extras, done, "");
    {
        AttrBuilder tb(os.type_extra_attrs);
        if (!os.arch.empty()) tb.add("arch", os.arch);
        if (!os.machine.empty()) tb.add("machine", os.machine);
        xml::Attrs ta = tb.finish();
        w.text_element("type", os.type, ta);
    }
    emit_after(w, os.extras, done, "type");
    {
        AttrBuilder lb(os.loader_extra_attrs);
        if (!os.loader_readonly.empty()) lb.add("readonly", os.loader_readonly);
        if (!os.loader_secure.empty()) lb.add("secure", os.loader_secure);
        if (!os.loader_type.empty()) lb.add("type", os.loader_type);
        for (auto k : {"stateless", "format"}) lb.extra(k);
        xml::Attrs la = lb.finish();
        if (!os.loader_path.empty()) w.text_element("loader", os.loader_path, la);
        else if (!la.empty()) w.empty("loader", la);
    }
    emit_after(w, os.extras, done, "loader");
    {
        AttrBuilder nb(os.nvram_extra_attrs);
        if (!os.nvram_template.empty()) nb.add("template", os.nvram_template);
        xml::Attrs na = nb.finish();
        if (!os.nvram_path.empty()) w.text_element("nvram", os.nvram_path, na);
        else if (!na.empty()) w.empty("nvram", na);
    }
    emit_after(w, os.extras, done, "nvram");
    for (auto [name, value] : {std::pair<const char *, const std::string *>{"kernel", &os.kernel},
                               {"initrd", &os.initrd},
                               {"cmdline", &os.cmdline},
                               {"dtb", &os.dtb}}) {
        if (!value->empty()) w.text_element(name, *value);
        emit_after(w, os.extras, done, name);
    }
    for (size_t i = 0; i < os.boot_devs.size(); ++i) {
        w.empty("boot", {{"dev", os.boot_devs[i]}});
        emit_after(w, os.extras, done, "boot", int(i));
    }
    emit_rest(w, os.extras, done);
    w.close("os");
}

bool device_has_boot_order(const DomainDevice &d) {
    if (!d.node) return d.xml.find("<boot ") != std::string::npos;
    for (const xmlNode *c = d.node->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar *>("boot")))
            return true;
    return false;
}

// libvirt's virDiskNameToIndex: "vda" -> 0, "sdab" -> 27; -1 when not a disk name.
long disk_name_index(std::string_view name) {
    size_t skip = 0;
    for (std::string_view prefix : {"fd", "hd", "vd", "sd", "xvd", "ubd"})
        if (name.starts_with(prefix)) {
            skip = prefix.size();
            break;
        }
    if (!skip) return -1;
    long idx = 0;
    size_t i = skip, letters = 0;
    for (; i < name.size() && name[i] >= 'a' && name[i] <= 'z'; ++i, ++letters) {
        if (idx > 100000000) return -1;
        idx = (idx + (letters < 1 ? 0 : 1)) * 26 + (name[i] - 'a');
    }
    if (letters == 0) return -1;
    for (; i < name.size(); ++i)
        if (name[i] < '0' || name[i] > '9') return -1;
    return idx;
}

// libvirt keeps disks grouped by bus and ordered by target within a bus
// (virDomainDiskInsert), so a definition lists them in that order.
void insert_disk(std::vector<DomainDisk> &disks, DomainDisk disk) {
    long insert_at = -1;
    long new_index = disk_name_index(disk.target_dev);
    for (long idx = long(disks.size()) - 1; idx >= 0; --idx) {
        if (disks[size_t(idx)].target_bus != disk.target_bus) continue;
        if (disk_name_index(disks[size_t(idx)].target_dev) > new_index) insert_at = idx;
        else if (insert_at == -1) insert_at = idx + 1;
    }
    if (insert_at < 0) disks.push_back(std::move(disk));
    else disks.insert(disks.begin() + insert_at, std::move(disk));
}

Status parse_devices(const ParseCtx &ctx, DomainDef &def, xml::Node n) {
    std::map<std::string, int, std::less<>> counts;
    std::string last;
    int last_ordinal = 0;
    bool have_emulator = false;
    for (xml::Node c : n.children()) {
        std::string name(c.name());
        if (name == "emulator" && !have_emulator && plain_text_element(c)) {
            def.emulator = c.text();
            have_emulator = true;
        } else if (name == "disk") {
            insert_disk(def.disks, TRY(parse_disk(ctx, c)));
        } else if (device_rank(name) >= 0) {
            def.devices.push_back(parse_device(ctx, c));
        } else {
            def.device_extras.push_back(make_verbatim(ctx, c, last, last_ordinal));
            continue;
        }
        last = name;
        last_ordinal = counts[name]++;
    }
    return ok();
}

void format_devices(xml::Writer &w, const DomainDef &def, unsigned flags) {
    w.open("devices");
    const auto &extras = def.device_extras;
    std::vector<bool> done(extras.size());
    emit_after(w, extras, done, "");
    if (!def.emulator.empty()) w.text_element("emulator", def.emulator);
    emit_after(w, extras, done, "emulator");
    for (size_t i = 0; i < def.disks.size(); ++i) {
        format_disk(w, def.disks[i], flags);
        emit_after(w, extras, done, "disk", int(i));
    }
    std::vector<const DomainDevice *> order;
    for (const auto &d : def.devices) order.push_back(&d);
    std::stable_sort(order.begin(), order.end(), [](const DomainDevice *a, const DomainDevice *b) {
        return device_rank(a->kind) < device_rank(b->kind);
    });
    std::map<std::string, int, std::less<>> counts;
    for (const DomainDevice *d : order) {
        format_device(w, *d, flags);
        emit_after(w, extras, done, d->kind, counts[d->kind]++);
    }
    emit_rest(w, extras, done);
    w.close("devices");
}

void format_block(xml::Writer &w, const std::string &text, const VerbatimNode &parsed) {
    if (text.empty()) return;
    if (parsed.node && parsed.xml == text) w.node(parsed.node);
    else emit_indented(w, text);
}

// Checks libvirt makes after parsing (post-parse and validation).
Status check_definition(const DomainDef &def) {
    if (def.max_memory_kib == 0)
        return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
                    "Memory size must be specified via <memory> or in the <numa> configuration");
    for (size_t i = 0; i < def.disks.size(); ++i)
        for (size_t j = i + 1; j < def.disks.size(); ++j)
            if (def.disks[i].target_dev == def.disks[j].target_dev) {
                auto src = [](const DomainDisk &d) {
                    const StorageSource &s = d.src;
                    std::string v = s.type == StorageSource::Type::Network  ? s.name
                                    : s.type == StorageSource::Type::Volume ? s.volume
                                                                            : s.path;
                    return v.empty() ? std::string("<null>") : v;
                };
                return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN,
                            "target '" + def.disks[i].target_dev + "' duplicated for disk sources '" +
                                src(def.disks[i]) + "' and '" + src(def.disks[j]) + "'");
            }
    std::set<int> orders;
    bool device_boot = false;
    for (const auto &d : def.disks) {
        if (!d.boot_order) continue;
        device_boot = true;
        if (!orders.insert(*d.boot_order).second)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                        "boot order '" + std::to_string(*d.boot_order) + "' used for more than one device");
    }
    for (const auto &d : def.devices) device_boot = device_boot || device_has_boot_order(d);
    if (device_boot && !def.os.boot_devs.empty())
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                    "per-device boot elements cannot be used together with os/boot elements");
    return ok();
}

}  // namespace

Result<std::unique_ptr<DomainDef>> DomainDef::parse_string(std::string_view text, unsigned flags) {
    xml::Document doc = TRY(xml::parse_with_root(text, "(domain_definition)", "domain", VIR_FROM_DOMAIN));
    xml::Node root = doc.root();
    return parse_node(root, flags, std::shared_ptr<xmlDoc>(doc.release().release(), xmlFreeDoc));
}

Result<std::unique_ptr<DomainDef>> DomainDef::parse_node(xml::Node root, unsigned flags) {
    // The caller's document may not outlive the definition: work on a private copy.
    std::shared_ptr<xmlDoc> copy_doc(xmlNewDoc(reinterpret_cast<const xmlChar *>("1.0")), xmlFreeDoc);
    if (!copy_doc) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
    xmlNode *copy = xmlDocCopyNode(root.raw(), copy_doc.get(), 1);
    if (!copy) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
    xmlDocSetRootElement(copy_doc.get(), copy);
    return parse_node(xml::Node(copy), flags, std::move(copy_doc));
}

Result<std::unique_ptr<DomainDef>> DomainDef::parse_node(xml::Node n, unsigned flags, std::shared_ptr<xmlDoc> owner) {
    // Kept elements point into `owner` for the definition's lifetime.
    ParseCtx ctx;
    ctx.flags = flags;
    ctx.owner = std::move(owner);
    // The document is the definition's own from here (a private copy, or
    // handed over by the caller), so normalising it in place is safe.
    for (xmlNode *c = n.raw()->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !(c->ns == nullptr && xmlStrEqual(c->name, BAD_CAST "metadata")))
            cdata_to_text(c);

    if ((flags & kDomainParseValidate) && !(flags & kDomainParseSkipValidate)) {
        xml::Document vdoc{XmlDocPtr(xmlNewDoc(reinterpret_cast<const xmlChar *>("1.0")))};
        if (!vdoc.raw()) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
        xmlNode *vroot = xmlDocCopyNode(n.raw(), vdoc.raw(), 1);
        if (!vroot) return fail(VIR_ERR_NO_MEMORY, VIR_FROM_DOMAIN, "");
        xmlDocSetRootElement(vdoc.raw(), vroot);
        TRY(xml::validate_rng(vdoc, xml::schema_dir() + "/domain.rng", VIR_FROM_DOMAIN));
    }

    auto def = std::make_unique<DomainDef>();
    auto type = n.attr("type");
    if (!type) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN, "missing domain type attribute");
    if (!one_of(kVirtTypes, *type))
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN, "invalid domain type " + *type);
    def->type = *type;
    if (!(flags & kDomainParseInactive)) {
        if (auto id = n.attr("id")) {
            bool neg = !id->empty() && (*id)[0] == '-';
            auto v = parse_ull(neg ? std::string_view(*id).substr(1) : std::string_view(*id));
            if (!v || *v > INT_MAX)
                return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                            "Invalid value for attribute 'id' in element '" + std::string(n.name()) + "': '" +
                                *id + "'. Expected integer value");
            def->id = neg ? -int(*v) : int(*v);
        }
    }
    for (const xmlNs *ns = n.raw()->nsDef; ns; ns = ns->next)
        def->root_extra_attrs.emplace_back(
            ns->prefix ? "xmlns:" + std::string(reinterpret_cast<const char *>(ns->prefix)) : "xmlns",
            reinterpret_cast<const char *>(ns->href));
    for (auto &kv : attrs_except(n, {"type", "id"})) def->root_extra_attrs.push_back(std::move(kv));

    static const std::set<std::string, std::less<>> kModelled = {
        "name", "uuid", "title", "description", "metadata", "memory", "currentMemory", "vcpu", "os",
        "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash", "devices"};
    std::set<std::string, std::less<>> seen;
    std::string last;
    bool have_uuid = false, have_current = false;
    for (xml::Node c : n.children()) {
        std::string name(c.name());
        // libvirt reads the first of each of these (XPath "string(./name[1])"
        // and the like) and ignores repeats; so do we. The first is always
        // modelled, from its string value as libvirt reads it (markup inside
        // contributes its text); its unknown attributes are kept. A first one
        // kept verbatim next to a written default or a generated <uuid> would
        // trade places with it on the next round.
        bool modelled = kModelled.contains(name) && !c.raw()->ns;
        if (!modelled) {
            def->extras.push_back(make_verbatim(ctx, c, last));
            continue;
        }
        if (seen.contains(name)) continue;
        seen.insert(name);
        last = name;
        if (name == "name" || name == "uuid" || name == "title" || name == "description" || name.starts_with("on_")) {
            AttrList extra = attrs_except(c, {});
            if (!extra.empty()) def->text_extra_attrs[name] = std::move(extra);
        }
        if (name == "name") {
            def->name = c.text();
        } else if (name == "uuid") {
            auto u = Uuid::parse(c.text());
            if (!u) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN, "malformed uuid element");
            def->uuid = *u;
            have_uuid = true;
        } else if (name == "title") {
            def->title = c.text();
            if (def->title.find('\n') != std::string::npos)
                return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "Domain title can't contain newlines");
        } else if (name == "description") {
            def->description = c.text();
        } else if (name == "metadata") {
            TRY(parse_metadata(*def, c));
        } else if (name == "memory") {
            def->max_memory_kib = TRY(parse_memory(c, "./memory[1]"));
            def->memory_extra_attrs = attrs_except(c, {"unit"});
        } else if (name == "currentMemory") {
            def->current_memory_kib = TRY(parse_memory(c, "./currentMemory[1]"));
            def->current_memory_extra_attrs = attrs_except(c, {"unit"});
            have_current = true;
        } else if (name == "vcpu") {
            TRY(parse_vcpu(*def, c));
        } else if (name == "os") {
            TRY(parse_os(ctx, def->os, c));
        } else if (name == "features" || name == "cpu" || name == "clock") {
            VerbatimNode v = make_verbatim(ctx, c, "");
            (name == "features" ? def->features_xml : name == "cpu" ? def->cpu_xml : def->clock_xml) = v.xml;
            (name == "features" ? def->features : name == "cpu" ? def->cpu : def->clock) = std::move(v);
        } else if (name.starts_with("on_")) {
            std::string action = c.text();
            bool valid = name == "on_crash" ? one_of(kCrashLifecycle, action) : one_of(kLifecycle, action);
            if (!valid)
                return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN, "unknown " + name + " action: " + action);
            (name == "on_poweroff" ? def->on_poweroff : name == "on_reboot" ? def->on_reboot : def->on_crash) = action;
        } else if (name == "devices") {
            TRY(parse_devices(ctx, *def, c));
        }
    }

    if (def->name.empty()) return fail(VIR_ERR_NO_NAME, VIR_FROM_DOMAIN, "");
    if (!seen.contains("os")) return fail(VIR_ERR_XML_ERROR, VIR_FROM_DOMAIN, "an os <type> must be specified");
    if (!have_uuid) def->uuid = Uuid::generate();
    if (def->vcpus == 0)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_DOMAIN, "CPU IDs in <numa> exceed the <vcpu> count");
    if (def->vcpus_current && *def->vcpus_current > def->vcpus)
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_DOMAIN,
                    "maximum vCPU count must not be less than current vCPU count");
    TRY(check_definition(*def));

    // libvirt's defaults for what it always prints.
    if (!have_current || def->current_memory_kib == 0 || def->current_memory_kib > def->max_memory_kib)
        def->current_memory_kib = def->max_memory_kib;
    if (def->on_poweroff.empty()) def->on_poweroff = "destroy";
    if (def->on_reboot.empty()) def->on_reboot = "restart";
    if (def->on_crash.empty()) def->on_crash = "destroy";
    bool device_boot = false;
    for (const auto &d : def->disks) device_boot = device_boot || d.boot_order.has_value();
    for (const auto &d : def->devices) device_boot = device_boot || device_has_boot_order(d);
    if (def->os.type == "hvm" && def->os.boot_devs.empty() && !device_boot && def->os.kernel.empty())
        def->os.boot_devs.push_back("hd");
    return def;
}

void DomainDef::format(xml::Writer &w, unsigned flags, std::string_view root_name) const {
    AttrBuilder ab(root_extra_attrs);
    ab.add("type", type);
    if (id != -1 && !(flags & kDomainFormatInactive)) ab.add("id", std::to_string(id));
    xml::Attrs attrs = ab.finish();
    w.open(root_name, attrs);
    std::vector<bool> done(extras.size());
    auto after = [&](std::string_view name) { emit_after(w, extras, done, name); };
    // A text element with its kept unknown attributes; an empty optional one
    // is written only to keep those attributes.
    auto text = [&](std::string_view element, const std::string &value, bool optional) {
        static const AttrList kNone;
        auto it = text_extra_attrs.find(element);
        const AttrList &extra = it == text_extra_attrs.end() ? kNone : it->second;
        if (optional && value.empty() && extra.empty()) return;
        AttrBuilder tb(extra);
        xml::Attrs ta = tb.finish();
        w.text_element(element, value, ta);
    };
    after("");
    text("name", name, false);
    after("name");
    text("uuid", uuid.str(), false);
    after("uuid");
    text("title", title, true);
    after("title");
    text("description", description, true);
    after("description");
    if (!metadata_xml.empty()) {
        if (metadata_node && metadata_xml == metadata_dump)
            w.line(dump_metadata(metadata_owner.get(), metadata_node, w.indent() / 2));
        else
            emit_indented(w, metadata_xml);
    }
    after("metadata");
    {
        AttrBuilder mb(memory_extra_attrs);
        mb.extra("dumpCore");
        mb.add("unit", "KiB");
        xml::Attrs ma = mb.finish();
        w.text_element("memory", std::to_string(max_memory_kib), ma);
    }
    after("memory");
    {
        AttrBuilder cb(current_memory_extra_attrs);
        cb.add("unit", "KiB");
        xml::Attrs ca = cb.finish();
        w.text_element("currentMemory", std::to_string(current_memory_kib), ca);
    }
    after("currentMemory");
    {
        AttrBuilder vb(vcpu_extra_attrs);
        vb.add("placement", vcpu_placement.empty() ? "static" : vcpu_placement);
        if (!vcpu_cpuset.empty()) vb.add("cpuset", vcpu_cpuset);
        if (vcpus_current && *vcpus_current != vcpus) vb.add("current", std::to_string(*vcpus_current));
        xml::Attrs va = vb.finish();
        w.text_element("vcpu", std::to_string(vcpus), va);
    }
    after("vcpu");
    format_os(w, os);
    after("os");
    format_block(w, features_xml, features);
    after("features");
    format_block(w, cpu_xml, cpu);
    after("cpu");
    if (clock_xml.empty()) w.empty("clock", {{"offset", "utc"}});
    else format_block(w, clock_xml, clock);
    after("clock");
    text("on_poweroff", on_poweroff.empty() ? "destroy" : on_poweroff, false);
    after("on_poweroff");
    text("on_reboot", on_reboot.empty() ? "restart" : on_reboot, false);
    after("on_reboot");
    text("on_crash", on_crash.empty() ? "destroy" : on_crash, false);
    after("on_crash");
    format_devices(w, *this, flags);
    after("devices");
    emit_rest(w, extras, done);
    w.close(root_name);
}

std::string DomainDef::format_string(unsigned flags) const {
    xml::Writer w(0);
    format(w, flags);
    return w.take();
}

int DomainDef::disk_index_by_name(std::string_view disk_name) const {
    // A target name is unique and wins at once; a source path must be unambiguous.
    int candidate = -1;
    for (size_t i = 0; i < disks.size(); ++i) {
        const DomainDisk &d = disks[i];
        if (disk_name.empty() || disk_name[0] != '/') {
            if (d.target_dev == disk_name) return int(i);
            continue;
        }
        const std::string &source = d.src.type == StorageSource::Type::Network ? d.src.name : d.src.path;
        if (!source.empty() && source == disk_name) {
            if (candidate >= 0) return -1;
            candidate = int(i);
        }
    }
    return candidate;
}

const DomainDisk *DomainDef::disk_by_target(std::string_view dev) const {
    for (const auto &d : disks)
        if (d.target_dev == dev) return &d;
    return nullptr;
}

DomainDisk *DomainDef::disk_by_target(std::string_view dev) {
    for (auto &d : disks)
        if (d.target_dev == dev) return &d;
    return nullptr;
}

}  // namespace virtsnap::conf
