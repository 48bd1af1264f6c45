// backup_def.cc - <domainbackup> parse, format and disk alignment, following
// libvirt 9.0's backup_conf.c.

#include "conf/backup_def.hh"

#include "conf/checkpoint_common.hh"
#include "util/xml_doc.hh"
#include "util/xml_writer.hh"

#include <cerrno>
#include <cstdlib>
#include <set>

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kDomain = VIR_FROM_DOMAIN;

constexpr const char *kStates[] = {"", "running", "complete", "failed", "cancelling", "cancelled"};
constexpr const char *kModes[] = {"", "full", "incremental"};

Unexpected invalid_attr(xml::Node node, const char *attr, const std::string &value) {
    return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                "Invalid value for attribute '" + std::string(attr) + "' in element '" +
                    std::string(node.name()) + "': '" + value + "'.");
}

// virXMLPropEnum over a table whose first entry is "" (the zero value).
template <typename E, size_t N>
Result<E> parse_enum_attr(xml::Node node, const char *attr, const char *const (&names)[N], bool required) {
    auto v = node.attr(attr);
    if (!v) {
        if (required)
            return fail(VIR_ERR_XML_ERROR, VIR_FROM_XML,
                        "Missing required attribute '" + std::string(attr) + "' in element '" +
                            std::string(node.name()) + "'");
        return E{};
    }
    for (size_t i = 0; i < N; i++)
        if (*v == names[i]) return E(i);
    return invalid_attr(node, attr, *v);
}

// virStringParsePort, reported without a domain as libvirt does.
Result<unsigned> parse_port(const std::string &s) {
    errno = 0;
    char *end = nullptr;
    long long v = s.empty() ? -1 : std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || errno != 0 || *end != '\0' || v < 0 || v > 0xffffffffLL)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "failed to parse port number '" + s + "'");
    if (v > 65535) return fail(VIR_ERR_INVALID_ARG, VIR_FROM_NONE, "port '" + s + "' out of range");
    return unsigned(v);
}

// virDomainStorageNetworkParseHost for the pull-mode <server>.
Result<BackupServer> parse_server(xml::Node node) {
    BackupServer server;
    if (auto transport = node.attr("transport")) {
        if (*transport != "tcp" && *transport != "unix" && *transport != "rdma")
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain,
                        "unknown protocol transport type '" + *transport + "'");
        server.transport = *transport;
    }
    server.socket = node.attr("socket");
    if (server.transport == "unix" && !server.socket)
        return fail(VIR_ERR_XML_ERROR, kDomain, "missing socket for unix transport");
    if (server.transport != "unix" && server.socket)
        return fail(VIR_ERR_XML_ERROR, kDomain,
                    "transport '" + server.transport + "' does not support socket attribute");
    if (server.transport != "unix") {
        server.name = node.attr("name");
        if (!server.name) return fail(VIR_ERR_XML_ERROR, kDomain, "missing name for host");
        if (auto port = node.attr("port")) server.port = TRY(parse_port(*port));
    }
    return server;
}

Result<BackupDiskDef> parse_disk(xml::Node node, bool push, bool internal) {
    BackupDiskDef disk;
    auto name = node.attr("name");
    if (!name) return fail(VIR_ERR_XML_ERROR, kDomain, "missing name from disk backup element");
    disk.name = *name;
    disk.backup = TRY(parse_tristate_attr(node, "backup"));
    if (disk.backup == BackupTristate::Absent) disk.backup = BackupTristate::Yes;
    // Nothing else of a disk left out of the backup matters.
    if (disk.backup == BackupTristate::No) return disk;

    if (!push) {
        disk.exportname = node.attr("exportname");
        disk.exportbitmap = node.attr("exportbitmap");
    }
    disk.backupmode = TRY(parse_enum_attr<BackupDiskMode>(node, "backupmode", kModes, false));
    disk.incremental = node.attr("incremental");
    if (internal) disk.state = TRY(parse_enum_attr<BackupDiskState>(node, "state", kStates, true));

    std::optional<std::string> format;
    if (xml::Node driver = node.child("driver")) {
        format = driver.attr("type");
        if (format && format->empty()) format.reset();  // string(./driver/@type) is empty: absent
    }
    disk.store = TRY(backup_store_parse_base(node.attr("type"), format,
                                             internal ? node.attr("index") : std::nullopt));
    if (xml::Node src = node.child(push ? "target" : "scratch"))
        TRY(backup_store_parse_source(*disk.store, src, internal));
    return disk;
}

void format_disk(xml::Writer &w, const BackupDiskDef &disk, bool push, bool internal) {
    xml::Element el(w, "disk");
    el.attr("name", disk.name);
    el.attr("backup", disk.backup == BackupTristate::Yes ? "yes" : disk.backup == BackupTristate::No ? "no" : "absent");
    if (internal && disk.state != BackupDiskState::None)
        el.attr("state", std::string(backup_disk_state_name(disk.state)));
    if (disk.backup == BackupTristate::Yes && disk.store) {
        const BackupStore &store = *disk.store;
        el.attr("type", store.type == StorageSource::Type::Block ? "block" : "file");
        if (disk.backupmode != BackupDiskMode::Default) el.attr("backupmode", kModes[size_t(disk.backupmode)]);
        el.attr("incremental", disk.incremental);
        el.attr("exportname", disk.exportname);
        el.attr("exportbitmap", disk.exportbitmap);
        if (store.index != 0) el.attr("index", std::to_string(store.index));
        if (!store.format.empty()) el.children().empty("driver", {{"type", store.format}});
        backup_store_format_source(el.children(), store, push ? "target" : "scratch");
    }
    el.finish();
}

// virDomainBackupDefAssignStore: a disk to back up needs media, and without a
// configured target/scratch one is named after its (file) source.
Status assign_store(BackupDiskDef &disk, const StorageSource &src, std::string_view suffix) {
    if (cpcommon::source_is_empty(src)) {
        if (disk.store)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "disk '" + disk.name + "' has no media");
    } else if (!disk.store) {
        // The actual type of a volume source is not known here; libvirt
        // resolves it from the pool, which virtsnap does not model.
        if (src.type != StorageSource::Type::File)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain,
                        "refusing to generate file name for disk '" + disk.name + "'");
        BackupStore store;
        store.type = StorageSource::Type::File;
        store.path = src.path + "." + std::string(suffix);
        disk.store = std::move(store);
    }
    return ok();
}

}  // namespace

std::string_view backup_type_name(BackupType t) {
    switch (t) {
    case BackupType::Default: return "default";
    case BackupType::Push: return "push";
    case BackupType::Pull: return "pull";
    }
    return "default";
}

std::string_view backup_disk_state_name(BackupDiskState s) { return kStates[size_t(s)]; }

Result<std::unique_ptr<BackupDef>> BackupDef::parse_string(std::string_view text, unsigned flags) {
    bool internal = flags & kBackupParseInternal;
    xml::Document doc = TRY(xml::parse(text, "(domain_backup)", kDomain));
    TRY(cpcommon::expect_root(doc, "domainbackup"));
    if (!internal && !(flags & kBackupParseSkipValidate))
        TRY(xml::validate_rng(doc, xml::schema_dir() + "/domainbackup.rng", VIR_FROM_XML));
    xml::Node root = doc.root();

    auto def = std::make_unique<BackupDef>();
    if (auto mode = root.attr("mode")) {
        if (*mode == "push") def->type = BackupType::Push;
        else if (*mode == "pull") def->type = BackupType::Pull;
        else return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "unknown backup mode '" + *mode + "'");
    }
    bool push = def->type == BackupType::Push;
    def->incremental = cpcommon::xpath_string(root.child("incremental"));

    if (xml::Node server = root.child("server")) {
        if (def->type != BackupType::Pull)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "use of <server> requires pull mode backup");
        def->server = TRY(parse_server(server));
        if (def->server->transport == "rdma")
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "transport rdma is not supported for <server>");
        if (def->server->transport == "unix" && (*def->server->socket)[0] != '/')
            return fail(VIR_ERR_XML_ERROR, kDomain,
                        "backup socket path '" + *def->server->socket + "' must be absolute");
        def->tls = TRY(parse_tristate_attr(server, "tls"));
    }

    // libvirt reads "./disks/*": every element below every <disks>.
    for (xml::Node disks : root.children("disks"))
        for (xml::Node disk : disks.children()) def->disks.push_back(TRY(parse_disk(disk, push, internal)));

    if (internal) {
        xml::Node objects = root.child("privateData").child("objects");
        for (xml::Node secret : objects.children("secret"))
            if (secret.attr("type") == "tlskey") {
                auto alias = secret.attr("alias");
                if (alias && !alias->empty()) def->tls_secret_alias = alias;
                break;
            }
        if (auto alias = objects.child("TLSx509").attr("alias"); alias && !alias->empty())
            def->tls_alias = alias;
    }
    return def;
}

std::string BackupDef::format(bool internal) const {
    xml::Writer w;
    xml::Element root(w, "domainbackup");
    root.attr("mode", std::string(backup_type_name(type)));
    xml::Writer &c = root.children();
    if (incremental) c.text_element("incremental", *incremental);
    if (server) {
        xml::Element el(c, "server");
        el.attr("transport", server->transport);
        if (tls != BackupTristate::Absent) el.attr("tls", tls == BackupTristate::Yes ? "yes" : "no");
        el.attr("name", server->name);
        if (server->port) el.attr("port", std::to_string(server->port));
        el.attr("socket", server->socket);
        el.finish();
    }
    xml::Element disks_el(c, "disks");
    for (const auto &disk : disks) format_disk(disks_el.children(), disk, type == BackupType::Push, internal);
    disks_el.finish();
    if (internal) {
        xml::Element priv(c, "privateData");
        xml::Element objects(priv.children(), "objects");
        if (tls_secret_alias) objects.children().empty("secret", {{"type", "tlskey"}, {"alias", tls_secret_alias}});
        if (tls_alias) objects.children().empty("TLSx509", {{"alias", tls_alias}});
        objects.finish();
        priv.finish();
    }
    root.finish();
    return w.take();
}

Status BackupDef::align_disks(const DomainDef &dom, std::string_view suffix) {
    if (dom.disks.empty())
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "domain must have at least one disk to perform backup");

    std::set<std::string> named;
    for (auto &disk : disks) {
        const DomainDisk *domdisk = dom.disk_by_target(disk.name);
        if (!domdisk) return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "no disk named '" + disk.name + "'");
        if (!named.insert(disk.name).second)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain, "disk '" + disk.name + "' specified twice");
        if (disk.backupmode == BackupDiskMode::Incremental && !disk.incremental && !incremental)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kDomain,
                        "'incremental' backup mode of disk '" + disk.name +
                            "' requires setting 'incremental' field for disk or backup");
        if (disk.backup == BackupTristate::Yes) TRY(assign_store(disk, domdisk->src, suffix));
    }

    // Naming no disk at all means "every disk that can be backed up".
    bool backup_all = disks.empty();
    for (const DomainDisk &domdisk : dom.disks) {
        if (named.count(domdisk.target_dev)) continue;
        BackupDiskDef disk;
        disk.name = domdisk.target_dev;
        if (backup_all && !cpcommon::disk_unusable(domdisk)) {
            disk.backup = BackupTristate::Yes;
            TRY(assign_store(disk, domdisk.src, suffix));
        } else {
            disk.backup = BackupTristate::No;
        }
        disks.push_back(std::move(disk));
    }

    for (auto &disk : disks) {
        if (disk.backupmode == BackupDiskMode::Default)
            disk.backupmode =
                (incremental || disk.incremental) ? BackupDiskMode::Incremental : BackupDiskMode::Full;
        if (!disk.incremental && disk.backupmode == BackupDiskMode::Incremental) disk.incremental = incremental;
    }
    return ok();
}

}  // namespace virtsnap::conf
