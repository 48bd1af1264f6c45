// snapshot_align.cc - snapshot disk alignment and default external names.

#include "conf/snapshot_align.hh"

#include <libvirt/libvirt.h>

#include <map>
#include <string>

#include <sys/stat.h>

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kConf = VIR_FROM_DOMAIN_SNAPSHOT;
constexpr virErrorDomain kDriver = VIR_FROM_QEMU;

// virDomainDiskGetSource: the path of a local disk, the name of a network one.
std::string_view disk_source(const DomainDisk &d) {
    using T = StorageSource::Type;
    switch (d.src.type) {
    case T::File:
    case T::Block:
    case T::Dir:
        return d.src.path;
    case T::Network:
        return d.src.name;
    default:
        return {};
    }
}

// virStorageSourceIsEmpty.
bool source_is_empty(const StorageSource &s) {
    using T = StorageSource::Type;
    if ((s.type == T::File || s.type == T::Block || s.type == T::Dir) && s.path.empty()) return true;
    if (s.type == T::None) return true;
    if (s.type == T::Network && s.protocol.empty()) return true;
    return false;
}

SnapshotLocation domain_disk_location(const DomainDisk &d) {
    auto loc = snapshot_location_from_name(d.snapshot);
    return loc ? *loc : SnapshotLocation::Default;
}

// virDomainDiskIndexByName without ambiguity: a target dev, or a source path
// ('/...') that matches exactly one disk.
int disk_index_by_name(const DomainDef &dom, std::string_view name) {
    int candidate = -1;
    for (size_t i = 0; i < dom.disks.size(); ++i) {
        const DomainDisk &d = dom.disks[i];
        if (name.empty() || name[0] != '/') {
            if (d.target_dev == name) return int(i);
        } else if (!disk_source(d).empty() && disk_source(d) == name) {
            if (candidate >= 0) return -1;
            candidate = int(i);
        }
    }
    return candidate;
}

}  // namespace

Result<SnapshotLocation> snapshot_create_defaults(SnapshotDef &def, unsigned create_flags, bool domain_active,
                                                  SnapshotState domain_state) {
    if (create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY) {
        def.state = domain_active ? SnapshotState::DiskSnapshot : SnapshotState::Shutoff;
        def.memory = SnapshotLocation::No;
        return SnapshotLocation::External;
    }
    if (def.memory == SnapshotLocation::External) {
        def.state = domain_state;
        return SnapshotLocation::External;
    }
    def.state = domain_state;
    if (domain_active && def.memory == SnapshotLocation::No)
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDriver,
                    "internal snapshot of a running VM must include the memory state");
    def.memory = def.state == SnapshotState::Shutoff ? SnapshotLocation::No : SnapshotLocation::Internal;
    return SnapshotLocation::Internal;
}

SnapshotLocation snapshot_redefine_align_location(const SnapshotDef &def) {
    if (def.state == SnapshotState::DiskSnapshot || def.is_external()) return SnapshotLocation::External;
    return SnapshotLocation::Internal;
}

Status snapshot_align_disks(SnapshotDef &def, const DomainDef *existing_domain, SnapshotLocation default_location,
                            bool uniform_internal) {
    const DomainDef *dom = def.domain ? def.domain.get() : existing_domain;
    if (!dom) return fail(VIR_ERR_INTERNAL_ERROR, kConf, "missing domain in snapshot");
    if (def.disks.size() > dom->disks.size())
        return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf, "too many disk snapshot requests for domain");

    bool require_match = uniform_internal && default_location == SnapshotLocation::Internal;
    if (dom->disks.empty()) return ok();

    // Requested disks, keyed by the domain disk they resolve to.
    std::map<size_t, SnapshotDiskDef> requested;
    for (auto &snapdisk : def.disks) {
        int idx = disk_index_by_name(*dom, snapdisk.name);
        if (idx < 0) return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf, "no disk named '" + snapdisk.name + "'");
        if (requested.count(size_t(idx)))
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf, "disk '" + snapdisk.name + "' specified twice");
        const DomainDisk &domdisk = dom->disks[size_t(idx)];
        SnapshotLocation domloc = domain_disk_location(domdisk);

        if (snapdisk.snapshot == SnapshotLocation::Default) {
            if (domloc != SnapshotLocation::Default && (!require_match || domloc == SnapshotLocation::No))
                snapdisk.snapshot = domloc;
            else
                snapdisk.snapshot = default_location;
        } else if (require_match && snapdisk.snapshot != default_location &&
                   !(snapdisk.snapshot == SnapshotLocation::No && domloc == SnapshotLocation::No)) {
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                        "disk '" + snapdisk.name + "' must use snapshot mode '" +
                            std::string(snapshot_location_name(default_location)) + "'");
        }

        if (snapdisk.has_source_path() && snapdisk.snapshot != SnapshotLocation::External)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                        "file '" + snapdisk.path + "' for disk '" + snapdisk.name +
                            "' requires use of external snapshot mode");
        snapdisk.name = domdisk.target_dev;
        requested.emplace(size_t(idx), snapdisk);
    }

    std::vector<SnapshotDiskDef> aligned;
    aligned.reserve(dom->disks.size());
    for (size_t i = 0; i < dom->disks.size(); ++i) {
        if (auto it = requested.find(i); it != requested.end()) {
            aligned.push_back(std::move(it->second));
            continue;
        }
        const DomainDisk &domdisk = dom->disks[i];
        SnapshotDiskDef d;
        d.name = domdisk.target_dev;
        // Empty drives (a cdrom without media) are never snapshotted.
        d.snapshot = source_is_empty(domdisk.src) ? SnapshotLocation::No : domain_disk_location(domdisk);
        d.type = StorageSource::Type::File;
        if (d.snapshot == SnapshotLocation::Default) d.snapshot = default_location;
        aligned.push_back(std::move(d));
    }
    def.disks = std::move(aligned);
    return snapshot_assign_external_names(def, *dom);
}

Status snapshot_assign_external_names(SnapshotDef &def, const DomainDef &domain) {
    for (size_t i = 0; i < def.disks.size(); ++i) {
        SnapshotDiskDef &disk = def.disks[i];
        if (disk.snapshot != SnapshotLocation::External || disk.has_source_path()) continue;

        if (disk.type != StorageSource::Type::File)
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                        "cannot generate external snapshot name for disk '" + disk.name + "' on a '" +
                            std::string(snapshot_disk_type_name(disk.type)) + "' device");

        std::string origpath = i < domain.disks.size() ? std::string(disk_source(domain.disks[i])) : "";
        if (origpath.empty())
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                        "cannot generate external snapshot name for disk '" + disk.name + "' without source");

        struct stat sb {};
        if (stat(origpath.c_str(), &sb) < 0 || !S_ISREG(sb.st_mode))
            return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                        "source for disk '" + disk.name +
                            "' is not a regular file; refusing to generate external snapshot name");

        // Drop the suffix of the last path component only.
        std::string base = origpath;
        size_t dot = base.rfind('.');
        if (dot != std::string::npos && base.find('/', dot) == std::string::npos) base.resize(dot);
        disk.path = base + "." + def.name;

        for (size_t j = 0; j < i; ++j)
            if (def.disks[j].path == disk.path)
                return fail(VIR_ERR_CONFIG_UNSUPPORTED, kConf,
                            "cannot generate external snapshot name for disk '" + disk.name +
                                "': collision with disk '" + def.disks[j].name + "'");
    }
    return ok();
}

Status snapshot_create_align(SnapshotDef &def, std::unique_ptr<DomainDef> live, std::unique_ptr<DomainDef> persistent,
                             unsigned create_flags, bool domain_active, SnapshotState domain_state) {
    def.domain = std::move(live);
    def.inactive_domain = std::move(persistent);
    SnapshotLocation where = TRY(snapshot_create_defaults(def, create_flags, domain_active, domain_state));
    return snapshot_align_disks(def, nullptr, where, true);
}

}  // namespace virtsnap::conf
