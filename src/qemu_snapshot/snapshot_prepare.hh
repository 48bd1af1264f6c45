// snapshot_prepare.hh - the checks libvirt's qemuSnapshotPrepare runs on an
// aligned snapshot definition, before anything is touched, and the plan the
// creation state machines follow.
//
// Order and wording are libvirt 9.0's (spec §2.5). virtsnap adds checks of
// files reused with VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT: format, virtual size
// and backing file must fit the disk they go on top of, so a wrong file is
// refused here instead of corrupting the guest's view after the switch.
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "util/result.hh"

#include <string>
#include <vector>

namespace virtsnap::qemu_snapshot {

// What one domain disk gets.
struct DiskPlan {
    size_t disk_index = 0;           // index in DomainDef::disks
    std::string target;              // vda
    conf::SnapshotLocation location = conf::SnapshotLocation::No;
    // External disks: the overlay, its format, whether it existed before
    // (REUSE_EXT, or an empty file libvirt accepts) and whether we reuse it.
    std::string overlay_path;
    std::string overlay_format = "qcow2";
    bool reuse = false;
    bool existed = false;
};

struct SnapshotPlan {
    std::vector<DiskPlan> disks;     // disks with location internal or external only
    bool has_internal = false;
    bool has_external = false;
    conf::SnapshotLocation memory = conf::SnapshotLocation::No;
    std::string memory_file;
    unsigned flags = 0;              // create flags, DISK_ONLY added for inactive external
};

// qemuSnapshotPrepare. `dom` is the definition in use (the live one of a
// running domain). `flags` are the create flags.
[[nodiscard]] Result<SnapshotPlan> snapshot_prepare(const conf::SnapshotDef &def, const conf::DomainDef &dom,
                                                    bool active, unsigned flags);

// REUSE_EXT: the existing overlay `plan` names must be a `plan.overlay_format`
// image of the disk's size whose backing file is the disk's current source.
[[nodiscard]] Status check_reused_overlay(const DiskPlan &plan, const conf::DomainDisk &disk);

}  // namespace virtsnap::qemu_snapshot
