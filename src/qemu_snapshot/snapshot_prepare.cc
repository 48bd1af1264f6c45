// snapshot_prepare.cc - qemuSnapshotPrepare's checks and the creation plan.

#include "qemu_snapshot/snapshot_prepare.hh"

#include "qemu/qemu_img.hh"

#include <libvirt/libvirt.h>

#include <cerrno>
#include <sys/stat.h>

namespace virtsnap::qemu_snapshot {

namespace {

using conf::SnapshotLocation;
using Type = conf::StorageSource::Type;

Unexpected unsupported(std::string text) { return fail(VIR_ERR_CONFIG_UNSUPPORTED, VIR_FROM_QEMU, std::move(text)); }

std::string type_name(Type t) { return std::string(conf::storage_type_name(t)); }

// qemuSnapshotPrepareDiskInternal.
Status prepare_internal(const conf::DomainDisk &disk, bool active, const conf::SnapshotDef &def) {
    if (active && def.state == conf::SnapshotState::DiskSnapshot)
        return unsupported("active qemu domains require external disk snapshots; disk " + disk.target_dev +
                           " requested internal");
    if (!active) {
        switch (disk.src.type) {
        case Type::File:
        case Type::Block:
            break;
        case Type::Network:
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        "internal inactive snapshots are not supported on 'network' disks using '" +
                            disk.src.protocol + "' protocol");
        default:
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        "internal inactive snapshots are not supported on '" + type_name(disk.src.type) +
                            "' disks");
        }
    }
    if (!disk.src.format.empty() && disk.src.format != "qcow2")
        return unsupported("internal snapshot for disk " + disk.target_dev + " unsupported for storage type " +
                           disk.src.format);
    return ok();
}

// qemuSnapshotPrepareDiskExternal (+ ...Inactive / ...Active / ...Overlay).
Status prepare_external(const conf::SnapshotDiskDef &sd, const conf::DomainDisk &disk, bool active, unsigned flags,
                        DiskPlan &plan) {
    std::string fmt = sd.driver_type.empty() ? "qcow2" : sd.driver_type;
    if (fmt != "qcow2" && fmt != "qed")
        return unsupported("external snapshot format for disk " + disk.target_dev + " is unsupported: " + fmt);
    if (sd.metadata_cache_max_size && fmt != "qcow2")
        return unsupported("metadata cache max size control is supported only with qcow2 images");
    if (fmt == "qed")  // accepted by libvirt, but QEMU is never driven with qed here
        return unsupported("external snapshot format for disk " + disk.target_dev + " is unsupported: " + fmt);
    if (!active) {
        if (disk.src.type != Type::File && disk.src.type != Type::Block)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        "external inactive snapshots are not supported on '" + type_name(disk.src.type) + "' disks");
        if (sd.type != Type::File && sd.type != Type::Block)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        "external inactive snapshots are not supported on '" + type_name(sd.type) +
                            "' disks");
    } else {
        if (disk.device == "lun")
            return unsupported("external active snapshots are not supported on scsi passthrough devices");
        if (sd.type != Type::File)
            return unsupported("external snapshot target type '" + type_name(sd.type) + "' for disk " +
                               disk.target_dev + " is not supported");
    }
    if (disk.shareable && !disk.readonly)
        return unsupported("shared access for disk '" + disk.target_dev + "' requires use of supported storage format");

    bool reuse = flags & VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT;
    struct stat st;
    if (::stat(sd.path.c_str(), &st) < 0) {
        int err = errno;
        if (err != ENOENT)
            return fail(make_system_error(VIR_FROM_QEMU, err, "unable to stat for disk " + disk.target_dev));
        if (reuse)
            return fail(make_system_error(VIR_FROM_QEMU, err, "missing existing file for disk " + disk.target_dev));
        if (sd.type == Type::Block)
            return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                        "block device snapshot target '" + sd.path + "' doesn't exist");
        plan.existed = false;
    } else {
        if ((sd.type == Type::Block) != S_ISBLK(st.st_mode))
            return unsupported("mismatch between configured type for snapshot disk '" + disk.target_dev +
                               "' and the type of existing file '" + sd.path + "'");
        if (!reuse && S_ISREG(st.st_mode) && st.st_size > 0)
            return unsupported("external snapshot file for disk " + disk.target_dev +
                               " already exists and is not a block device: " + sd.path);
        plan.existed = true;
    }
    plan.overlay_path = sd.path;
    plan.overlay_format = fmt;
    plan.reuse = reuse;
    return ok();
}

bool disk_is_empty(const conf::DomainDisk &d) { return d.src.empty(); }

}  // namespace

Result<SnapshotPlan> snapshot_prepare(const conf::SnapshotDef &def, const conf::DomainDef &dom, bool active,
                                      unsigned flags) {
    SnapshotPlan plan;
    plan.flags = flags;
    plan.memory = def.memory == SnapshotLocation::Default ? SnapshotLocation::No : def.memory;
    plan.memory_file = def.memory_file;
    bool found_internal = false;
    size_t external = 0;
    bool forbid_internal = false;

    for (const auto &sd : def.disks) {
        int idx = dom.disk_index_by_name(sd.name);
        if (idx < 0) return unsupported("no disk named '" + sd.name + "'");
        const conf::DomainDisk &disk = dom.disks[size_t(idx)];
        DiskPlan dp;
        dp.disk_index = size_t(idx);
        dp.target = disk.target_dev;
        dp.location = sd.snapshot;
        switch (sd.snapshot) {
        case SnapshotLocation::Internal:
            TRY(prepare_internal(disk, active, def));
            found_internal = true;
            plan.disks.push_back(std::move(dp));
            break;
        case SnapshotLocation::External:
            TRY(prepare_external(sd, disk, active, flags, dp));
            ++external;
            plan.disks.push_back(std::move(dp));
            break;
        case SnapshotLocation::Manual:
        case SnapshotLocation::No:
            // Internal snapshots (with or without memory) need every writable
            // disk that has content.
            if (!disk_is_empty(disk) && !disk.readonly) forbid_internal = true;
            if (sd.snapshot == SnapshotLocation::Manual)
                return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                            "snapshot mode 'manual' of disk '" + disk.target_dev + "' is not supported");
            break;
        case SnapshotLocation::Default:
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "unexpected code path");
        }
    }

    if (!found_internal && external == 0 && plan.memory == SnapshotLocation::No)
        return unsupported("nothing selected for snapshot");
    if ((plan.memory == SnapshotLocation::Internal && !found_internal) || (found_internal && forbid_internal))
        return unsupported("internal and full system snapshots require all disks to be selected for snapshot");
    if (def.state == conf::SnapshotState::DiskSnapshot && external == 0)
        return unsupported("disk-only snapshots require at least one disk to be selected for snapshot");
    if ((found_internal && external) || (plan.memory == SnapshotLocation::Internal && external) ||
        (plan.memory == SnapshotLocation::External && found_internal))
        return unsupported("mixing internal and external targets for a snapshot is not yet supported");
    if (found_internal && dom.os.loader_type == "pflash")
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "internal snapshots of a VM with pflash based firmware are not supported");
    if (external && !active) plan.flags |= VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
    plan.has_internal = found_internal;
    plan.has_external = external > 0;
    if (!plan.has_external) plan.flags &= ~unsigned(VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT);

    // Ours: reused files must fit their disks.
    for (const auto &dp : plan.disks)
        if (dp.location == SnapshotLocation::External && dp.reuse)
            TRY(check_reused_overlay(dp, dom.disks[dp.disk_index]));
    return plan;
}

Status check_reused_overlay(const DiskPlan &plan, const conf::DomainDisk &disk) {
    auto img = qemu::qemu_img::info(plan.overlay_path, "", true);
    if (!img)
        return unsupported("cannot read reused external snapshot file '" + plan.overlay_path + "' for disk " +
                           disk.target_dev + ": " + img.error().detail);
    if (img->format != plan.overlay_format)
        return unsupported("reused external snapshot file '" + plan.overlay_path + "' for disk " + disk.target_dev +
                           " has format '" + img->format + "', expected '" + plan.overlay_format + "'");
    if (disk.src.type == conf::StorageSource::Type::File || disk.src.type == conf::StorageSource::Type::Block) {
        auto base = qemu::qemu_img::info(disk.src.path, disk.src.format, true);
        if (base && base->virtual_size != img->virtual_size)
            return unsupported("reused external snapshot file '" + plan.overlay_path + "' for disk " +
                               disk.target_dev + " has size " + std::to_string(img->virtual_size) +
                               ", the disk has " + std::to_string(base->virtual_size));
        std::string backing = img->full_backing_filename.empty() ? img->backing_filename : img->full_backing_filename;
        if (backing != disk.src.path)
            return unsupported("reused external snapshot file '" + plan.overlay_path + "' for disk " +
                               disk.target_dev + " must have '" + disk.src.path + "' as backing file, not '" +
                               backing + "'");
    }
    return ok();
}

}  // namespace virtsnap::qemu_snapshot
