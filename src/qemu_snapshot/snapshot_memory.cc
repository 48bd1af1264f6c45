// snapshot_memory.cc - memory images of external snapshots.

#include "qemu_snapshot/snapshot_memory.hh"

#include "qemu/save_image.hh"

namespace virtsnap::qemu_snapshot {

Status check_background_snapshot(qemu::Monitor &mon) {
    auto caps = TRY(mon.query_migrate_capabilities());
    bool known = false;
    for (const auto &c : caps) known = known || c.capability == "background-snapshot";
    if (!known)
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "instant snapshots are not supported: QEMU lacks the background-snapshot migration capability");
    if (auto st = mon.migrate_set_capabilities({{"background-snapshot", true}}); !st)
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "instant snapshots are not supported on this host: " + st.error().detail);
    return mon.migrate_set_capabilities({{"background-snapshot", false}});
}

Status write_memory_image(qemu::Monitor &mon, const std::string &path, const MemoryImageOptions &opts) {
    qemu::SaveImageWriter::Options wo;
    wo.xml = opts.domain_xml;
    wo.cookie = std::string(kSnapshotSaveCookie);
    wo.was_running = opts.was_running;
    auto writer = TRY(qemu::SaveImageWriter::create(path, wo));
    qemu::MemoryMigrationOptions mo;
    mo.job_name = "snapshot job";
    mo.abort_requested = opts.abort_requested;
    mo.tracker = opts.tracker;
    mo.capabilities = opts.capabilities;
    auto migrated = qemu::migrate_memory_to_fd(mon, writer.fd(), mo);
    if (!migrated) {
        writer.abort();
        return fail(std::move(migrated).error());
    }
    return writer.finalize();
}

}  // namespace virtsnap::qemu_snapshot
