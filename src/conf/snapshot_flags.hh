// snapshot_flags.hh - the checks virDomainSnapshotCreateXML runs before any
// hypervisor work, as pure functions.
//
// Order and wording follow libvirt 9.0: the public API's flag checks
// (libvirt-domain-snapshot.c), then the qemu driver's (qemuSnapshotCreateXML),
// the parse flags it derives, and the checks on the parsed definition
// (qemuSnapshotCreateXMLValidateDef: name rules, LIVE, domain state).
//
// virtsnap adds one flag, VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT (1 << 10): a live
// snapshot whose memory is written in the background after an instant pause.
// It requires LIVE and excludes REDEFINE and DISK_ONLY; its checks run right
// after libvirt's QUIESCE check, before LIVE+REDEFINE, so INSTANT+REDEFINE is
// reported as such whatever else is set.
#pragma once

#include "conf/snapshot_def.hh"
#include "util/result.hh"

#include <libvirt/libvirt.h>

#include <string_view>

namespace virtsnap::conf {

inline constexpr unsigned kSnapshotCreateInstant = 1u << 10;

// Every create flag the driver accepts (libvirt's virCheckFlags list + INSTANT).
inline constexpr unsigned kSnapshotCreateSupported =
    VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT |
    VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA | VIR_DOMAIN_SNAPSHOT_CREATE_HALT |
    VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT |
    VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC |
    VIR_DOMAIN_SNAPSHOT_CREATE_LIVE | VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE | kSnapshotCreateInstant;

// The C name of one create flag ("VIR_DOMAIN_SNAPSHOT_CREATE_LIVE"), "" if unknown.
std::string_view snapshot_create_flag_name(unsigned flag);

// The public API's checks then the driver's flag checks, in libvirt's order,
// stopping at the first failure. Errors are VIR_FROM_DOMAIN_SNAPSHOT for the
// public-API part and VIR_FROM_QEMU for the driver part, as in libvirt.
// `read_only`: the connection is read-only (OPERATION_DENIED).
[[nodiscard]] Status validate_snapshot_create_flags(unsigned flags, bool domain_active, bool domain_persistent,
                                                    bool read_only = false);

// qemuSnapshotCreateXMLParse: REDEFINE -> PARSE_REDEFINE; DISK_ONLY or an
// inactive domain -> PARSE_OFFLINE; VALIDATE -> PARSE_VALIDATE.
unsigned snapshot_parse_flags_for_create(unsigned create_flags, bool domain_active);

// Name rules (only without NO_METADATA, so also for REDEFINE): no '/', no
// leading '.'; XML_DETAIL errors.
[[nodiscard]] Status validate_snapshot_name(std::string_view name, unsigned create_flags);

// qemuSnapshotCreateXMLValidateDef: name rules, LIVE only for a running
// domain with external memory, and the state check (the domain's state, or the
// XML's with REDEFINE). `domain_state` uses the snapshot-state numbering.
[[nodiscard]] Status validate_snapshot_create_def(const SnapshotDef &def, unsigned create_flags,
                                                  bool domain_active, SnapshotState domain_state);

}  // namespace virtsnap::conf
