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
    if (devices.empty()) return log.commit({{"tag", tag}});
    ctl.set_phase("snapshot-delete");
    JournalFields f{{"tag", tag}};
    for (size_t i = 0; i < devices.size(); ++i) f.set("device" + std::to_string(i), devices[i]);
    // ══ commit point: a tag QEMU started to delete cannot come back ══
    TRY(log.commit(f));
    TRY(log.intent("snapshot-delete", f));
    qemu::Monitor &mon = ctl.monitor();
    qemu::JobWatch watch(mon, "snapshot-delete");
    TRY(mon.snapshot_delete({watch.job_id(), tag, "", devices}));
    TRY(run_snapshot_job(ctl, watch, timeout, "Failed to delete snapshot"));
    return log.done("snapshot-delete");
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

JournalFields external_delete_commit_fields(const std::vector<ExternalDiskDelete> &plan) {
    JournalFields cf;
    for (size_t i = 0; i < plan.size(); ++i) {
        const auto &d = plan[i];
        std::string k = "disk" + std::to_string(i) + ".";
        cf.set(k + "target", d.target).set(k + "mode", std::string(external_delete_mode_name(d.mode)));
        cf.set(k + "overlay", d.overlay).set(k + "base", d.base).set(k + "base_format", d.base_format);
        cf.set(k + "depth", int64_t(d.running_depth));
        for (size_t j = 0; j < d.rebase.size(); ++j) cf.set(k + "rebase" + std::to_string(j), d.rebase[j]);
    }
    return cf;
}

Result<std::vector<ExternalDiskDelete>> external_delete_from_commit(const JournalFields &f) {
    std::vector<ExternalDiskDelete> out;
    for (size_t i = 0;; ++i) {
        std::string k = "disk" + std::to_string(i) + ".";
        if (!f.has(k + "target")) break;
        ExternalDiskDelete d;
        d.target = TRY(f.need_str(k + "target"));
        std::string mode = TRY(f.need_str(k + "mode"));
        d.mode = mode == "drop" ? ExternalDeleteMode::Drop
                 : mode == "commit" ? ExternalDeleteMode::Commit
                                    : ExternalDeleteMode::Keep;
        d.overlay = TRY(f.need_str(k + "overlay"));
        d.base = TRY(f.need_str(k + "base"));
        d.base_format = f.str(k + "base_format").value_or("");
        d.running_depth = int(f.num(k + "depth").value_or(-1));
        for (size_t j = 0;; ++j) {
            auto r = f.str(k + "rebase" + std::to_string(j));
            if (!r) break;
            d.rebase.push_back(*r);
        }
        out.push_back(std::move(d));
    }
    return out;
}

ImageRefs collect_image_refs(const conf::DomainDef *persistent, const conf::DomainDef *live,
                             const conf::SnapshotList &list, std::string_view skip) {
    ImageRefs refs;
    if (persistent) refs.add_domain(*persistent);
    if (live) refs.add_domain(*live);
    if (auto names = list.list_all(0))
        for (const auto &n : *names)
            if (n != skip)
                if (auto s = list.find(n)) refs.add_snapshot(**s);
    return refs;
}

bool drop_committed_layers(conf::DomainDef &def, const std::vector<ExternalDiskDelete> &plan) {
    bool changed = false;
    for (const auto &d : plan)
        if (d.mode == ExternalDeleteMode::Commit)
            changed = drop_layer_in_domain(def, d.overlay, d.base, d.base_format) || changed;
    return changed;
}

void drop_committed_layers_in_snapshots(conf::SnapshotList &list, std::string_view skip,
                                        const std::vector<ExternalDiskDelete> &plan) {
    auto names = list.list_all(0);
    if (!names) return;
    for (const auto &n : *names) {
        if (n == skip) continue;
        auto other = list.find(n);
        if (!other) continue;
        auto copy = (*other)->clone();
        bool changed = false;
        if (copy->domain) changed = drop_committed_layers(*copy->domain, plan);
        if (copy->inactive_domain) changed = drop_committed_layers(*copy->inactive_domain, plan) || changed;
        if (changed)
            if (auto st = list.replace_def(std::move(copy)); !st)
                VS_WARN("cannot update snapshot '%s': %s", n.c_str(), st.error().message().c_str());
    }
}

void remove_unreferenced_images(const conf::SnapshotDef &snap, const std::vector<ExternalDiskDelete> &plan,
                                const ImageRefs &after, const conf::SnapshotList &list, JobJournal *journal) {
    StepLog log(journal);
    for (const auto &d : plan) {
        if (!file::exists(d.overlay) || after.referenced(d.overlay)) continue;
        if (auto st = log.intent("unlink", {{"path", d.overlay}}); !st) {
            VS_WARN("cannot record unlink of %s: %s", d.overlay.c_str(), st.error().message().c_str());
            return;
        }
        if (auto st = file::remove(d.overlay, VIR_FROM_QEMU); !st)
            VS_WARN("cannot remove %s: %s", d.overlay.c_str(), st.error().message().c_str());
        else
            (void)log.done("unlink");
    }
    if (snap.memory_file.empty() || !file::exists(snap.memory_file)) return;
    if (auto names = list.list_all(0))
        for (const auto &n : *names)
            if (n != snap.name)
                if (auto o = list.find(n); o && (*o)->memory_file == snap.memory_file) return;
    if (auto st = file::remove(snap.memory_file, VIR_FROM_QEMU); !st)
        VS_WARN("cannot remove %s: %s", snap.memory_file.c_str(), st.error().message().c_str());
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
        // From the pivot on the guest writes to B: a recovery that finds QEMU
        // gone must not commit O over those writes.
        TRY(log.intent("pivot", {{"disk", disk.target}, {"overlay", disk.overlay}}));
        if (auto st = mon.job_complete(watch.job_id()); !st) {
            (void)mon.job_cancel(watch.job_id());
            return failed(std::move(st).error());
        }
    }
    if (auto st = run_snapshot_job(ctl, watch, timeout, "block commit"); !st) return failed(std::move(st).error());
    if (k == 0) TRY(log.done("pivot"));
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
