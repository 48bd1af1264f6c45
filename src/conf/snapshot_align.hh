// snapshot_align.hh - fitting a snapshot's <disks> to its domain.
//
// libvirt 9.0's virDomainSnapshotAlignDisks (with uniform_internal_snapshot as
// the qemu driver passes it), virDomainSnapshotDefAssignExternalNames, and the
// per-state defaults that qemuSnapshotCreateAlignDisks applies before it.
// After alignment the snapshot has exactly one disk per domain disk, in domain
// order, named by target dev, each with a concrete location.
#pragma once

#include "conf/domain_def.hh"
#include "conf/snapshot_def.hh"
#include "util/result.hh"

#include <memory>

namespace virtsnap::conf {

// qemuSnapshotCreateAlignDisks' defaults (spec §2.4): sets def.state and
// def.memory from the domain state and flags and returns the default disk
// location. Refuses an internal snapshot of a running domain without memory.
// `domain_state` is the domain's current state (snapshot-state numbering).
[[nodiscard]] Result<SnapshotLocation> snapshot_create_defaults(SnapshotDef &def, unsigned create_flags,
                                                                bool domain_active, SnapshotState domain_state);

// The location virDomainSnapshotRedefinePrep aligns with: external for a
// disk-snapshot state or anything external, else internal.
SnapshotLocation snapshot_redefine_align_location(const SnapshotDef &def);

// virDomainSnapshotAlignDisks. Uses def.domain, else `existing_domain` (the
// replaced snapshot's domain on redefine); neither is INTERNAL_ERROR "missing
// domain in snapshot". Then assigns default external names.
[[nodiscard]] Status snapshot_align_disks(SnapshotDef &def, const DomainDef *existing_domain,
                                          SnapshotLocation default_location, bool uniform_internal);

// virDomainSnapshotDefAssignExternalNames for an aligned def: external disks
// without a path get "<domain source minus its last suffix>.<snapshot name>".
// The domain disk's source must be an existing regular file.
[[nodiscard]] Status snapshot_assign_external_names(SnapshotDef &def, const DomainDef &domain);

// The whole of qemuSnapshotCreateAlignDisks: stores `live` (the running or
// inactive definition, already in inactive form) as def.domain and
// `persistent` (the next-boot definition of a running persistent domain, or
// null) as def.inactive_domain, applies the defaults and aligns uniformly.
[[nodiscard]] Status snapshot_create_align(SnapshotDef &def, std::unique_ptr<DomainDef> live,
                                           std::unique_ptr<DomainDef> persistent, unsigned create_flags,
                                           bool domain_active, SnapshotState domain_state);

}  // namespace virtsnap::conf
