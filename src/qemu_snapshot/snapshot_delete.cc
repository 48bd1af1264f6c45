// snapshot_delete.cc - the delete state machines (diagrams in the header).

#include "qemu_snapshot/snapshot_delete.hh"

#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "qemu_snapshot/snapshot_revert_job.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "qemu_snapshot.delete"

namespace virtsnap::qemu_snapshot {

using conf::SnapshotLocation;

std::string_view external_delete_mode_name(ExternalDeleteMode m) {
    switch (m) {
    case ExternalDeleteMode::Drop: return "drop";
    case ExternalDeleteMode::Commit: return "commit";
    case ExternalDeleteMode::Keep: return "keep";
    }
    return "?";
}

// ---------------------------------------------------------------- internal

Status delete_internal_inactive(const conf::SnapshotDef &snap, const conf::DomainDef &dom, JobJournal *journal) {
    StepLog log(journal);
    TRY(log.commit({{"tag", snap.name}}));
    for (const auto *d : internal_snapshot_disks(snap, dom)) {
        auto snaps = qemu::qemu_img::snapshot_list(d->src.path);
        if (!snaps) {
            VS_WARN("cannot list snapshots of %s: %s", d->src.path.c_str(), snaps.error().message().c_str());
            continue;
        }
        bool have = false;
        for (const auto &s : *snaps) have = have || s.name == snap.name;
        if (!have) continue;
        TRY(log.intent("qemu-img-delete", {{"disk", d->target_dev}, {"path", d->src.path}}));
        TRY(qemu::qemu_img::snapshot_delete(d->src.path, snap.name));
        TRY(log.done("qemu-img-delete"));
    }
    return ok();
}

Status delete_internal_active(DomainControl &ctl, const std::string &tag, const std::vector<std::string> &devices,
                              JobJournal *journal, std::chrono::milliseconds timeout) {
    StepLog log(journal);
    if (devices.empty()) return ok();
    ctl.set_phase("snapshot-delete");
    JournalFields f{{"tag", tag}};
    for (size_t i = 0; i < devices.size(); ++i) f.set("device" + std::to_string(i), devices[i]);
    TRY(log.intent("snapshot-delete", f));
    qemu::Monitor &mon = ctl.monitor();
    qemu::JobWatch watch(mon, "snapshot-delete");
    TRY(mon.snapshot_delete({watch.job_id(), tag, "", devices}));
    TRY(run_snapshot_job(ctl, watch, timeout, "Failed to delete snapshot"));
    TRY(log.done("snapshot-delete"));
    return log.commit({{"tag", tag}});
}

// ---------------------------------------------------------------- chains

bool drop_chain_layer(conf::StorageSource &top, const std::string &path, const std::string &base,
                      const std::string &base_format) {
    std::string want = ImageRefs::canonical(path);
    if (top.is_local() && ImageRefs::canonical(top.path) == want) {
        if (!top.backing) {
            top.path = base;
            top.format = base_format;
            return true;
        }
        bool ro = top.readonly;
        std::optional<int> index = top.index;
        conf::StorageSource next = std::move(*top.backing);
        top = std::move(next);
        top.readonly = ro;
        if (!index) top.index.reset();
        return true;
    }
    for (conf::StorageSource *s = &top; s->backing; s = s->backing.get()) {
        conf::StorageSource &b = *s->backing;
        if (b.is_local() && ImageRefs::canonical(b.path) == want) {
            if (b.backing) {
                auto rest = std::move(b.backing);
                s->backing = std::move(rest);
            } else {
                s->backing.reset();
            }
            return true;
        }
    }
    return false;
}

bool drop_layer_in_domain(conf::DomainDef &def, const std::string &path, const std::string &base,
                          const std::string &base_format) {
    bool changed = false;
    for (auto &d : def.disks) changed = drop_chain_layer(d.src, path, base, base_format) || changed;
    return changed;
}

// ---------------------------------------------------------------- external

Result<std::vector<ExternalDiskDelete>> plan_external_delete(const conf::SnapshotDef &snap, const ImageRefs &others,
                                                             const conf::DomainDef *live) {
    std::vector<ExternalDiskDelete> out;
    for (const auto &sd : snap.disks) {
        if (sd.snapshot != SnapshotLocation::External) continue;
        if (sd.delete_in_progress)
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "snapshot disk '" + sd.name + "' was target of not completed snapshot delete");
        const conf::DomainDisk *sdisk = snap.domain ? snap.domain->disk_by_target(sd.name) : nullptr;
        if (!sdisk)
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "failed to find disk '" + sd.name + "' in snapshot VM XML");
        ExternalDiskDelete d;
        d.target = sd.name;
        d.overlay = ImageRefs::canonical(sd.path);
        d.base = ImageRefs::canonical(sdisk->src.path);
        d.base_format = sdisk->src.format;
        if (!file::exists(d.overlay) || !others.referenced(d.overlay)) {
            d.mode = ExternalDeleteMode::Drop;
            out.push_back(std::move(d));
            continue;
        }
        auto info = qemu::qemu_img::info(d.overlay, "", true);
        bool backed_by_base = info && ImageRefs::canonical(info->full_backing_filename) == d.base;
        if (info && d.base_format.empty()) d.base_format = info->backing_format;
        if (d.base_format.empty()) {
            auto binfo = qemu::qemu_img::info(d.base, "", true);
            if (binfo) d.base_format = binfo->format;
        }
        auto base_deps = others.dependents(d.base);
        base_deps.erase(d.overlay);
        if (!backed_by_base || !base_deps.empty() || others.is_top(d.base)) {
            d.mode = ExternalDeleteMode::Keep;
            out.push_back(std::move(d));
            continue;
        }
        d.mode = ExternalDeleteMode::Commit;
        std::string running_child;
        if (live) {
            if (const conf::DomainDisk *ld = live->disk_by_target(d.target)) {
                int depth = 0;
                const conf::StorageSource *prev = nullptr;
                for (const conf::StorageSource *s = &ld->src; s; s = s->backing.get(), ++depth) {
                    if (s->is_local() && ImageRefs::canonical(s->path) == d.overlay) {
                        d.running_depth = depth;
                        if (prev) running_child = ImageRefs::canonical(prev->path);
                        break;
                    }
                    prev = s;
                }
            }
        }
        for (const auto &dep : others.dependents(d.overlay))
            if (dep != running_child) d.rebase.push_back(dep);
        out.push_back(std::move(d));
    }
    return out;
}

Status commit_offline(const ExternalDiskDelete &disk, JobJournal *journal) {
    StepLog log(journal);
    TRY(log.intent("qemu-img-commit", {{"disk", disk.target}, {"overlay", disk.overlay}, {"base", disk.base}}));
    if (auto st = qemu::qemu_img::commit(disk.overlay); !st)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "block commit failed while deleting disk '" + disk.target + "' snapshot: '" +
                        st.error().message() + "'");
    TRY(log.done("qemu-img-commit"));
    for (const auto &img : disk.rebase) {
        TRY(log.intent("rebase", {{"image", img}, {"base", disk.base}}));
        TRY(qemu::qemu_img::rebase(img, disk.base, disk.base_format, true));
        TRY(log.done("rebase"));
    }
    return ok();
}

Status commit_online(DomainControl &ctl, const ExternalDiskDelete &disk, std::vector<qemu::DiskNodeNames> &graph,
                     JobJournal *journal, std::chrono::milliseconds timeout) {
    StepLog log(journal);
    qemu::DiskNodeNames *g = nullptr;
    for (auto &x : graph)
        if (x.target == disk.target) g = &x;
    size_t k = size_t(disk.running_depth);
    if (!g || disk.running_depth < 0 || g->layers.size() < k + 2)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "no block node for layer " + std::to_string(k) + " of disk '" + disk.target + "'");
    qemu::Monitor &mon = ctl.monitor();
    const std::string top = g->layers[k].format, base = g->layers[k + 1].format;
    ctl.set_phase("commit-" + disk.target);
    TRY(log.intent("block-commit", {{"disk", disk.target}, {"top", top}, {"base", base}, {"overlay", disk.overlay}}));
    auto failed = [&](Error e) {
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "block commit failed while deleting disk '" + disk.target + "' snapshot: '" + e.message() + "'");
    };
    qemu::JobWatch watch(mon, "commit-" + disk.target);
    qemu::BlockCommitArgs args;
    args.job_id = watch.job_id();
    args.device = g->layers[0].format;
    if (k > 0) args.top_node = top;
    args.base_node = base;
    if (auto st = mon.block_commit(args); !st) return failed(std::move(st).error());
    if (k == 0) {
        // Active commit: the guest keeps writing to O until the pivot.
        if (auto st = wait_job_status(ctl, watch, {"ready"}, timeout, "block commit"); !st)
            return failed(std::move(st).error());
        if (auto st = mon.job_complete(watch.job_id()); !st) {
            (void)mon.job_cancel(watch.job_id());
            return failed(std::move(st).error());
        }
    }
    if (auto st = run_snapshot_job(ctl, watch, timeout, "block commit"); !st) return failed(std::move(st).error());
    TRY(log.done("block-commit"));
    for (const auto &node : {g->layers[k].format, g->layers[k].storage})
        if (auto st = mon.blockdev_del(node); !st)
            VS_WARN("cannot remove node %s: %s", node.c_str(), st.error().message().c_str());
    g->layers.erase(g->layers.begin() + long(k));
    for (const auto &img : disk.rebase) {
        TRY(log.intent("rebase", {{"image", img}, {"base", disk.base}}));
        TRY(qemu::qemu_img::rebase(img, disk.base, disk.base_format, true));
        TRY(log.done("rebase"));
    }
    return ok();
}

}  // namespace virtsnap::qemu_snapshot
