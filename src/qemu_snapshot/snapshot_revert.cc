// snapshot_revert.cc - the revert state machines (diagrams in the header).

#include "qemu_snapshot/snapshot_revert.hh"

#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_revert_job.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "qemu_snapshot.revert"

namespace virtsnap::qemu_snapshot {

using conf::SnapshotLocation;

std::vector<const conf::DomainDisk *> internal_snapshot_disks(const conf::SnapshotDef &snap,
                                                              const conf::DomainDef &dom) {
    std::vector<const conf::DomainDisk *> out;
    for (const auto &sd : snap.disks) {
        if (sd.snapshot != SnapshotLocation::Internal) continue;
        const conf::DomainDisk *d = dom.disk_by_target(sd.name);
        if (!d || d->device != "disk" || !d->src.is_local() || d->src.path.empty()) continue;
        if (!d->src.format.empty() && d->src.format != "qcow2") continue;
        out.push_back(d);
    }
    return out;
}

Status check_internal_tag(const std::vector<const conf::DomainDisk *> &disks, const std::string &tag) {
    for (const auto *d : disks) {
        auto info = TRY(qemu::qemu_img::info(d->src.path, "", true));
        bool found = false;
        for (const auto &s : info.snapshots) found = found || s.name == tag;
        if (!found)
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "disk '" + d->target_dev + "' has no internal snapshot '" + tag + "'");
    }
    return ok();
}

std::unique_ptr<conf::DomainDef> adopt_snapshot_domain(const conf::DomainDef &src, const std::string &name,
                                                       const Uuid &uuid) {
    auto d = src.clone();
    d->name = name;
    d->uuid = uuid;
    d->id = -1;
    return d;
}

namespace {

Result<bool> has_tag(const std::string &path, std::string_view tag) {
    auto snaps = TRY(qemu::qemu_img::snapshot_list(path));
    for (const auto &s : snaps)
        if (s.name == tag) return true;
    return false;
}

}  // namespace

Status restore_revert_undo(const std::string &path) {
    const std::string undo_tag(kRevertUndoTag);
    if (!file::exists(path) || !TRY(has_tag(path, undo_tag))) return ok();
    TRY(qemu::qemu_img::snapshot_apply(path, undo_tag));
    return qemu::qemu_img::snapshot_delete(path, undo_tag);
}

Status drop_revert_undo(const std::string &path) {
    const std::string undo_tag(kRevertUndoTag);
    if (!file::exists(path) || !TRY(has_tag(path, undo_tag))) return ok();
    return qemu::qemu_img::snapshot_delete(path, undo_tag);
}

bool snapshot_load_failed_before_loading(std::string_view err) {
    // QEMU's load_snapshot() checks, all made before vm_stop/bdrv_all_goto_snapshot.
    static constexpr std::string_view kBefore[] = {
        "Snapshot '",            // ... does not exist in one or more devices
        "Snapshot can not be found",
        "This is a disk-only snapshot",
        "Device '",              // ... is writable but does not support snapshots
        "No block device",       // ... can accept snapshots / supports snapshots
        "vmstate block device '",
        "Snapshots are not compatible with",
    };
    for (auto prefix : kBefore)
        if (err.starts_with(prefix)) return true;
    return false;
}

// ---------------------------------------------------------------- internal, shut off

Status revert_internal_inactive(const conf::SnapshotDef &snap, const conf::DomainDef &dom, JobJournal *journal) {
    StepLog log(journal);
    auto disks = internal_snapshot_disks(snap, dom);
    if (disks.empty())
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "snapshot '" + snap.name + "' has no internal disk snapshot to revert to");
    TRY(check_internal_tag(disks, snap.name));
    // A stale undo tag (a crash after the commit) would make -c fail: drop it.
    for (const auto *d : disks) TRY(drop_revert_undo(d->src.path));

    const std::string undo_tag(kRevertUndoTag);
    Txn txn;
    for (const auto *d : disks) {
        std::string path = d->src.path;
        TRY(log.intent("save-undo", {{"disk", d->target_dev}, {"path", path}}));
        txn.add_undo("restore " + path, [path] { return restore_revert_undo(path); });
        if (auto st = qemu::qemu_img::snapshot_create(path, undo_tag); !st)
            return fail(txn.abort(std::move(st).error()));
        if (auto st = log.done("save-undo"); !st) return fail(txn.abort(std::move(st).error()));
    }
    for (const auto *d : disks) {
        if (auto st = log.intent("apply", {{"disk", d->target_dev}, {"path", d->src.path}}); !st)
            return fail(txn.abort(std::move(st).error()));
        if (auto st = qemu::qemu_img::snapshot_apply(d->src.path, snap.name); !st)
            return fail(txn.abort(std::move(st).error()));
        if (auto st = log.done("apply"); !st) return fail(txn.abort(std::move(st).error()));
    }
    // ══ commit point: every disk is at the snapshot (unless committed before QEMU was stopped) ══
    if (!journal || !journal->committed())
        if (auto st = log.commit(); !st) return fail(txn.abort(std::move(st).error()));
    txn.commit();
    for (const auto *d : disks)
        if (auto st = drop_revert_undo(d->src.path); !st)
            VS_WARN("cannot drop undo snapshot of %s: %s", d->src.path.c_str(), st.error().message().c_str());
    return ok();
}

// ---------------------------------------------------------------- internal, QEMU running

Status revert_internal_active(InternalActiveRevert &req) {
    DomainControl &ctl = *req.ctl;
    StepLog log(req.journal);
    req.partly_loaded = false;
    if (req.devices.empty() || req.vmstate.empty())
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "snapshot '" + req.tag + "' has no internal disk snapshot to revert to");
    Txn txn;
    if (ctl.running()) {
        ctl.set_phase("pause");
        TRY(log.intent("pause"));
        txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        if (auto st = ctl.pause(VIR_DOMAIN_PAUSED_FROM_SNAPSHOT); !st) return fail(txn.abort(std::move(st).error()));
        if (auto st = log.done("pause"); !st) return fail(txn.abort(std::move(st).error()));
    }
    if (ctl.abort_requested())
        return fail(txn.abort(make_error(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "snapshot job: canceled by client")));

    ctl.set_phase("snapshot-load");
    JournalFields f{{"tag", req.tag}, {"vmstate", req.vmstate}};
    for (size_t i = 0; i < req.devices.size(); ++i) f.set("device" + std::to_string(i), req.devices[i]);
    if (auto st = log.intent("snapshot-load", f); !st) return fail(txn.abort(std::move(st).error()));
    qemu::Monitor &mon = ctl.monitor();
    qemu::JobWatch watch(mon, "snapshot-load");
    if (auto st = mon.snapshot_load({watch.job_id(), req.tag, req.vmstate, req.devices}); !st)
        return fail(txn.abort(std::move(st).error()));
    auto outcome = await_snapshot_job(ctl, watch, req.job_timeout);
    if (!outcome) return fail(txn.abort(std::move(outcome).error()));
    if (*outcome) {
        const std::string &qemu_error = **outcome;
        bool before = snapshot_load_failed_before_loading(qemu_error);
        // Recorded while the concluded job still exists: a daemon killed from
        // here on finds the failure in the journal, not by guessing.
        if (auto st = log.done("snapshot-load", {{"error", qemu_error}, {"loaded", int64_t(before ? 0 : 1)}}); !st)
            VS_WARN("cannot record the failed load: %s", st.error().message().c_str());
        if (auto st = mon.job_dismiss(watch.job_id()); !st)
            VS_WARN("cannot dismiss job %s: %s", watch.job_id().c_str(), st.error().message().c_str());
        Error e = make_error(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "Failed to revert snapshot: " + qemu_error);
        if (before) return fail(txn.abort(std::move(e)));
        // Disks and memory may be partly at the snapshot: running the guest
        // would run a mix of two states. It stays paused (txn not undone).
        txn.commit();
        req.partly_loaded = true;
        return fail(make_error(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                               "Failed to revert snapshot: " + qemu_error +
                                   " (the guest is left paused and may be partly at the snapshot: revert again "
                                   "or destroy it)"));
    }
    // ══ commit point: the guest is at the snapshot; recorded before the job is dismissed ══
    txn.commit();
    if (auto st = log.commit({{"tag", req.tag}}); !st)
        VS_WARN("cannot record the commit of the revert: %s", st.error().message().c_str());
    if (auto st = mon.job_dismiss(watch.job_id()); !st)
        VS_WARN("cannot dismiss job %s: %s", watch.job_id().c_str(), st.error().message().c_str());
    return ok();
}

// ---------------------------------------------------------------- external

std::string revert_overlay_path(const std::string &base, const std::string &snapshot) {
    std::string stem = base;
    std::string name = file::basename(base);
    if (auto dot = name.rfind('.'); dot != std::string::npos && dot > 0)
        stem = base.substr(0, base.size() - (name.size() - dot));
    for (unsigned n = 1;; ++n) {
        std::string p = stem + "." + snapshot + "-revert" + std::to_string(n);
        if (!file::exists(p)) return p;
    }
}

Result<ExternalRevertResult> revert_external_prepare(const conf::SnapshotDef &snap, const conf::DomainDef &dom,
                                                     Txn &txn, JobJournal *journal) {
    StepLog log(journal);
    ExternalRevertResult out;
    out.def = dom.clone();
    for (const auto &sd : snap.disks) {
        if (sd.snapshot != SnapshotLocation::External) continue;
        conf::DomainDisk *disk = out.def->disk_by_target(sd.name);
        if (!disk)
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "failed to find disk '" + sd.name + "' in snapshot VM XML");
        if (!disk->src.is_local() || disk->src.path.empty() || !file::exists(disk->src.path))
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "image '" + disk->src.path + "' of snapshot '" + snap.name + "' disk '" + sd.name +
                            "' is not available");
        TRY(qemu::qemu_img::fill_backing_chain(disk->src));
        if (disk->src.format.empty()) {
            auto info = TRY(qemu::qemu_img::info(disk->src.path, "", true));
            disk->src.format = info.format;
        }
        DiskPlan dp;
        dp.target = sd.name;
        dp.overlay_path = revert_overlay_path(disk->src.path, snap.name);
        dp.overlay_format = "qcow2";
        std::string path = dp.overlay_path;
        TRY(log.intent("create-overlay", {{"disk", sd.name}, {"path", path}, {"base", disk->src.path}}));
        txn.add_undo("unlink " + path, [path] { return file::remove(path, VIR_FROM_QEMU); });
        TRY(qemu::qemu_img::create_overlay(path, disk->src.path, disk->src.format));
        TRY(log.done("create-overlay"));
        disk->src = overlay_source(dp, disk->src, std::nullopt);
        out.overlays.push_back(path);
    }
    return out;
}

}  // namespace virtsnap::qemu_snapshot
