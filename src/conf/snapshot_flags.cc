// snapshot_flags.cc - create-flag, name and definition checks of snapshot creation.

#include "conf/snapshot_flags.hh"

#include <cstdio>
#include <string>

namespace virtsnap::conf {

namespace {

constexpr virErrorDomain kApi = VIR_FROM_DOMAIN_SNAPSHOT;
constexpr virErrorDomain kDriver = VIR_FROM_QEMU;

std::string name_of(unsigned flag) { return std::string(snapshot_create_flag_name(flag)); }

// libvirt's VIR_REQUIRE_FLAG_RET(flag, required).
Status require_flag(unsigned flags, unsigned flag, unsigned required, virErrorDomain dom) {
    if ((flags & flag) && !(flags & required))
        return fail(VIR_ERR_INVALID_ARG, dom,
                    "Flag '" + name_of(required) + "' is required by flag '" + name_of(flag) + "'");
    return ok();
}

// libvirt's VIR_EXCLUSIVE_FLAGS_RET(a, b).
Status exclusive_flags(unsigned flags, unsigned a, unsigned b, virErrorDomain dom) {
    if ((flags & a) && (flags & b))
        return fail(VIR_ERR_INVALID_ARG, dom,
                    "Flags '" + name_of(a) + "' and '" + name_of(b) + "' are mutually exclusive");
    return ok();
}

}  // namespace

std::string_view snapshot_create_flag_name(unsigned flag) {
    switch (flag) {
    case VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE: return "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE";
    case VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT: return "VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT";
    case VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA: return "VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA";
    case VIR_DOMAIN_SNAPSHOT_CREATE_HALT: return "VIR_DOMAIN_SNAPSHOT_CREATE_HALT";
    case VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY: return "VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY";
    case VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT: return "VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT";
    case VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE: return "VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE";
    case VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC: return "VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC";
    case VIR_DOMAIN_SNAPSHOT_CREATE_LIVE: return "VIR_DOMAIN_SNAPSHOT_CREATE_LIVE";
    case VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE: return "VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE";
    case kSnapshotCreateInstant: return "VIR_DOMAIN_SNAPSHOT_CREATE_INSTANT";
    default: return "";
    }
}

Status validate_snapshot_create_flags(unsigned flags, bool domain_active, bool domain_persistent,
                                      bool read_only) {
    (void)domain_active;  // no flag check depends on it; kept for the callers' symmetry
    // Public API (virDomainSnapshotCreateXML).
    if (read_only)
        return fail(VIR_ERR_OPERATION_DENIED, kApi, "read only access prevents virDomainSnapshotCreateXML");
    TRY(require_flag(flags, VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, kApi));
    TRY(exclusive_flags(flags, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA, kApi));
    TRY(exclusive_flags(flags, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, VIR_DOMAIN_SNAPSHOT_CREATE_HALT, kApi));

    // Driver (qemuSnapshotCreateXML).
    if (unsigned unknown = flags & ~kSnapshotCreateSupported) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function qemuSnapshotCreateXML", unknown);
        return fail(VIR_ERR_INVALID_ARG, kDriver, buf);
    }
    TRY(require_flag(flags, VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, kDriver));
    TRY(exclusive_flags(flags, kSnapshotCreateInstant, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, kDriver));
    TRY(exclusive_flags(flags, kSnapshotCreateInstant, VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY, kDriver));
    TRY(require_flag(flags, kSnapshotCreateInstant, VIR_DOMAIN_SNAPSHOT_CREATE_LIVE, kDriver));
    TRY(exclusive_flags(flags, VIR_DOMAIN_SNAPSHOT_CREATE_LIVE, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE, kDriver));
    // qemuDomainSupportsCheckpointsBlockjobs cannot fail with QEMU >= 6.0's
    // incremental-backup support, which virtsnap requires.
    if (!domain_persistent && (flags & VIR_DOMAIN_SNAPSHOT_CREATE_HALT))
        return fail(VIR_ERR_OPERATION_INVALID, kDriver, "cannot halt after transient domain snapshot");
    return ok();
}

unsigned snapshot_parse_flags_for_create(unsigned create_flags, bool domain_active) {
    unsigned parse = 0;
    if (create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE) parse |= kSnapshotParseRedefine;
    if ((create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY) || !domain_active) parse |= kSnapshotParseOffline;
    if (create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE) parse |= kSnapshotParseValidate;
    return parse;
}

Status validate_snapshot_name(std::string_view name, unsigned create_flags) {
    if (create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA) return ok();
    if (name.find('/') != std::string_view::npos)
        return fail(VIR_ERR_XML_DETAIL, kDriver,
                    "invalid snapshot name '" + std::string(name) + "': name can't contain '/'");
    if (!name.empty() && name[0] == '.')
        return fail(VIR_ERR_XML_DETAIL, kDriver,
                    "invalid snapshot name '" + std::string(name) + "': name can't start with '.'");
    return ok();
}

Status validate_snapshot_create_def(const SnapshotDef &def, unsigned create_flags, bool domain_active,
                                    SnapshotState domain_state) {
    bool redefine = create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
    TRY(validate_snapshot_name(def.name, create_flags));

    if ((create_flags & VIR_DOMAIN_SNAPSHOT_CREATE_LIVE) &&
        (!domain_active || def.memory != SnapshotLocation::External))
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDriver,
                    "live snapshot creation is supported only during full system snapshots");

    SnapshotState state = redefine ? def.state : domain_state;
    switch (state) {
    case SnapshotState::Running:
    case SnapshotState::Paused:
    case SnapshotState::Shutdown:
    case SnapshotState::Shutoff:
    case SnapshotState::Crashed:
        return ok();
    case SnapshotState::DiskSnapshot:
        if (redefine) return ok();
        break;
    case SnapshotState::PmSuspended:
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDriver,
                    "qemu doesn't support taking snapshots of PMSUSPENDED guests");
    case SnapshotState::NoState:
    case SnapshotState::Blocked:
        break;
    }
    return fail(VIR_ERR_INTERNAL_ERROR, kDriver,
                "Invalid domain state " + std::string(snapshot_state_name(state)));
}

}  // namespace virtsnap::conf
