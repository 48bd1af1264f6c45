// block_graph.cc - builds -blockdev node descriptions and frontend devices
// from a disk's StorageSource chain.
#define LOG_MODULE "qemu.block_graph"

#include "qemu/block_graph.hh"

#include "util/log.hh"
#include "util/xml_doc.hh"

namespace virtsnap::qemu {

namespace {

Unexpected unsupported(std::string what) {
    return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_QEMU, std::move(what));
}

const std::string *driver_attr(const conf::DomainDisk &disk, std::string_view name) {
    for (auto &[k, v] : disk.driver_attrs)
        if (k == name) return &v;
    return nullptr;
}

// The cache mode's two QEMU flags, as libvirt's qemuDomainDiskCachemodeFlags.
Result<std::optional<QValue>> cache_flags(const std::string &mode) {
    bool direct, no_flush;
    if (mode.empty() || mode == "default") return std::optional<QValue>();
    if (mode == "none") direct = true, no_flush = false;
    else if (mode == "writethrough" || mode == "writeback") direct = false, no_flush = false;
    else if (mode == "directsync") direct = true, no_flush = false;
    else if (mode == "unsafe") direct = false, no_flush = true;
    else return unsupported("disk cache mode '" + mode + "' is not supported");
    return std::optional<QValue>(QValue(QDict{{"direct", direct}, {"no-flush", no_flush}}));
}

Result<QValue> nbd_server(const conf::StorageSource &src) {
    if (src.hosts.size() != 1)
        return unsupported("protocol 'nbd' accepts only one host");
    const auto &h = src.hosts.front();
    if (h.transport == "unix")
        return QValue(QDict{{"type", "unix"}, {"path", h.socket}});
    if (!h.transport.empty() && h.transport != "tcp")
        return unsupported("transport '" + h.transport + "' is not supported for protocol 'nbd'");
    return QValue(QDict{{"type", "inet"}, {"host", h.name}, {"port", h.port.empty() ? "10809" : h.port}});
}

std::string verbatim_name(const conf::VerbatimNode &v) {
    if (v.node) return reinterpret_cast<const char *>(v.node->name);
    auto doc = xml::parse(v.xml, "(disk element)", VIR_FROM_QEMU);
    return doc ? std::string(doc->root().name()) : std::string("?");
}

std::string verbatim_model(const conf::VerbatimNode &v) {
    if (v.node) return xml::Node(const_cast<xmlNode *>(v.node)).attr("model").value_or("");
    auto doc = xml::parse(v.xml, "(disk element)", VIR_FROM_QEMU);
    return doc ? doc->root().attr("model").value_or("") : std::string();
}

// Disk XML the command line does not express is refused, never dropped.
Status check_disk_extras(const conf::DomainDisk &disk) {
    std::string where = "disk '" + disk.target_dev + "'";
    for (auto &x : disk.extras)
        return unsupported("element '" + verbatim_name(x) + "' in " + where + " is not supported");
    for (auto &x : disk.driver_children)
        return unsupported("element '" + verbatim_name(x) + "' in the driver of " + where + " is not supported");
    for (auto &[k, v] : disk.extra_attrs)
        return unsupported("attribute '" + k + "' of " + where + " is not supported");
    for (auto &[k, v] : disk.target_extra_attrs)
        if (k != "tray") return unsupported("target attribute '" + k + "' of " + where + " is not supported");
    for (const conf::StorageSource *s = &disk.src; s; s = s->backing.get())
        for (auto &x : s->source_extras) {
            if (verbatim_name(x) != "seclabel")
                return unsupported("element '" + verbatim_name(x) + "' in the source of " + where +
                                   " is not supported");
            // No security driver: only labels that ask for none are honoured
            // (by doing nothing), as for the domain's own <seclabel>.
            std::string model = verbatim_model(x);
            if (!model.empty() && model != "none")
                return unsupported("Unable to find security driver for model " + model);
        }
    return ok();
}

}  // namespace

std::string storage_node_name(unsigned index) { return "libvirt-" + std::to_string(index) + "-storage"; }
std::string format_node_name(unsigned index) { return "libvirt-" + std::to_string(index) + "-format"; }

Result<LayerNodes> layer_nodes(const conf::StorageSource &src, unsigned index, const LayerOptions &opts) {
    using Type = conf::StorageSource::Type;
    LayerNodes layer;
    layer.index = index;
    auto cache = TRY(cache_flags(opts.cache));
    if (!opts.discard.empty() && opts.discard != "unmap" && opts.discard != "ignore")
        return unsupported("disk discard mode '" + opts.discard + "' is not supported");
    if (!opts.io.empty() && opts.io != "native" && opts.io != "threads" && opts.io != "io_uring")
        return unsupported("disk io mode '" + opts.io + "' is not supported");

    QDict storage;
    switch (src.type) {
    case Type::File:
    case Type::Block:
        storage.emplace_back("driver", src.type == Type::File ? "file" : "host_device");
        storage.emplace_back("filename", src.path);
        if (!opts.io.empty()) storage.emplace_back("aio", opts.io);
        break;
    case Type::Network:
        if (src.protocol != "nbd")
            return unsupported("disk protocol '" + src.protocol + "' is not supported");
        storage.emplace_back("driver", "nbd");
        storage.emplace_back("server", TRY(nbd_server(src)));
        if (!src.name.empty()) storage.emplace_back("export", src.name);
        break;
    default:
        return unsupported("disk source type '" + std::string(conf::storage_type_name(src.type)) +
                           "' is not supported");
    }
    storage.emplace_back("node-name", layer.storage_name());
    // QEMU reopens the file read-write only when a job needs it (commit, stream).
    storage.emplace_back("auto-read-only", true);
    if (!opts.discard.empty()) storage.emplace_back("discard", opts.discard);
    if (cache) storage.emplace_back("cache", *cache);
    layer.storage = QValue(std::move(storage));

    std::string format = src.format.empty() ? "raw" : src.format;
    if (format != "raw" && format != "qcow2")
        return unsupported("disk format '" + format + "' is not supported");
    QDict fmt;
    fmt.emplace_back("node-name", layer.format_name());
    fmt.emplace_back("read-only", opts.read_only);
    if (!opts.discard.empty()) fmt.emplace_back("discard", opts.discard);
    if (cache) fmt.emplace_back("cache", *cache);
    fmt.emplace_back("driver", format);
    fmt.emplace_back("file", layer.storage_name());
    if (format == "qcow2") {
        if (opts.backing) fmt.emplace_back("backing", *opts.backing);
        else fmt.emplace_back("backing", nullptr);
    } else if (opts.backing) {
        return unsupported("raw image '" + src.path + "' cannot have a backing store");
    }
    layer.format = QValue(std::move(fmt));
    return layer;
}

std::vector<const QValue *> DiskBlockGraph::creation_order() const {
    std::vector<const QValue *> out;
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        out.push_back(&it->storage);
        out.push_back(&it->format);
    }
    return out;
}

Result<DiskBlockGraph> disk_block_graph(const conf::DomainDisk &disk, NodeIndexAllocator &alloc) {
    DiskBlockGraph graph;
    TRY(check_disk_extras(disk));
    if (disk.src.empty()) {
        if (disk.device == "cdrom") return graph;
        return unsupported("disk '" + disk.target_dev + "' has no source");
    }
    std::vector<const conf::StorageSource *> chain;
    for (const conf::StorageSource *s = &disk.src; s && !s->empty(); s = s->backing.get()) chain.push_back(s);
    for (const auto *s : chain)
        if (s->index) alloc.note_used(unsigned(*s->index));
    std::vector<unsigned> indexes(chain.size());
    for (size_t i = chain.size(); i-- > 0;)
        indexes[i] = chain[i]->index ? unsigned(*chain[i]->index) : alloc.allocate();

    LayerOptions base_opts;
    if (auto *v = driver_attr(disk, "cache")) base_opts.cache = *v;
    if (auto *v = driver_attr(disk, "discard")) base_opts.discard = *v;
    if (auto *v = driver_attr(disk, "io")) base_opts.io = *v;
    for (auto &[k, v] : disk.driver_attrs) {
        if (k != "name" && k != "type" && k != "cache" && k != "discard" && k != "io")
            return unsupported("disk driver attribute '" + k + "' is not supported");
    }
    if (!disk.driver_name.empty() && disk.driver_name != "qemu")
        return unsupported("disk driver name '" + disk.driver_name + "' is not supported");

    for (size_t i = 0; i < chain.size(); ++i) {
        const auto *s = chain[i];
        if (i > 0 && s->format.empty())
            return unsupported("format of backing image '" + s->path + "' of image '" + chain[i - 1]->path +
                               "' was not specified");
        LayerOptions o = base_opts;
        o.read_only = i > 0 || disk.readonly || disk.device == "cdrom";
        if (i + 1 < chain.size()) o.backing = format_node_name(indexes[i + 1]);
        graph.layers.push_back(TRY(layer_nodes(*s, indexes[i], o)));
    }
    return graph;
}

int disk_name_to_index(std::string_view name) {
    for (std::string_view prefix : {"fd", "hd", "vd", "sd", "xvd", "ubd"}) {
        if (name.substr(0, prefix.size()) != prefix) continue;
        std::string_view rest = name.substr(prefix.size());
        if (rest.empty()) return -1;
        long idx = 0;
        for (char c : rest) {
            if (c < 'a' || c > 'z') return -1;
            idx = idx * 26 + (c - 'a' + 1);
            if (idx > 1000000) return -1;
        }
        return int(idx - 1);
    }
    return -1;
}

std::string disk_alias(const conf::DomainDisk &disk) {
    int idx = disk_name_to_index(disk.target_dev);
    const std::string &bus = disk.target_bus;
    if (bus == "virtio") return "virtio-disk" + std::to_string(idx);
    if (bus == "scsi") return "scsi0-0-0-" + std::to_string(idx);
    if (bus == "sata") return "sata0-0-" + std::to_string(idx);
    if (bus == "ide") return "ide0-" + std::to_string(idx / 2) + "-" + std::to_string(idx % 2);
    return disk.target_dev;
}

Result<std::string> disk_frontend_device(const conf::DomainDisk &disk, const DiskBlockGraph &graph, bool q35) {
    int idx = disk_name_to_index(disk.target_dev);
    if (idx < 0)
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_QEMU,
                    "invalid disk target '" + disk.target_dev + "'");
    const std::string &bus = disk.target_bus;
    bool cdrom = disk.device == "cdrom";
    if (disk.device != "disk" && !cdrom)
        return unsupported("disk device '" + disk.device + "' is not supported");
    if (disk.shareable) return unsupported("shareable disks are not supported");
    if (disk.transient) return unsupported("transient disks are not supported");

    std::string dev;
    if (bus == "virtio") {
        if (cdrom) return unsupported("disk device 'cdrom' is not supported on bus 'virtio'");
        dev = "virtio-blk-pci";
    } else if (bus == "scsi") {
        dev = std::string(cdrom ? "scsi-cd" : "scsi-hd") + ",bus=scsi0.0,channel=0,scsi-id=0,lun=" +
              std::to_string(idx);
    } else if (bus == "sata") {
        if (idx > 5) return unsupported("disk target '" + disk.target_dev + "' exceeds the SATA ports");
        dev = std::string(cdrom ? "ide-cd" : "ide-hd") + ",bus=" + (q35 ? "ide." : "sata0.") + std::to_string(idx);
    } else if (bus == "ide") {
        if (q35) return unsupported("IDE controllers are unsupported for this QEMU binary or machine type");
        if (idx > 3) return unsupported("disk target '" + disk.target_dev + "' exceeds the IDE buses");
        dev = std::string(cdrom ? "ide-cd" : "ide-hd") + ",bus=ide." + std::to_string(idx / 2) +
              ",unit=" + std::to_string(idx % 2);
    } else {
        return unsupported("disk bus '" + bus + "' is not supported");
    }
    if (!graph.layers.empty()) dev += ",drive=" + graph.top_node();
    dev += ",id=" + disk_alias(disk);
    if (disk.boot_order) dev += ",bootindex=" + std::to_string(*disk.boot_order);
    if (!disk.serial.empty()) {
        for (char c : disk.serial)
            if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ' ' || c == '.'))
                return fail(VIR_ERR_INVALID_ARG, VIR_FROM_QEMU, "disk serial '" + disk.serial +
                            "' contains characters other than [A-Za-z0-9_ .-]");
        dev += ",serial=" + disk.serial;
    }
    if (disk.readonly && !cdrom && bus != "virtio" && bus != "scsi")
        return unsupported("readonly ide disks are not supported");
    return dev;
}

}  // namespace virtsnap::qemu
