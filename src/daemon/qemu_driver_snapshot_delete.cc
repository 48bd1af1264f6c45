// qemu_driver_snapshot_delete.cc - virDomainSnapshotDelete: libvirt's flag
// checks, then per snapshot (descendants leaves first for CHILDREN and
// CHILDREN_ONLY) the delete machine of src/qemu_snapshot that fits it, the
// definitions and the other snapshots' stored chains updated, images
// unlinked only when nothing refers to them, and the metadata removed last.

#include "daemon/qemu_driver.hh"

#include "conf/snapshot_list.hh"
#include "daemon/check_flags.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/image_refs.hh"
#include "qemu_snapshot/snapshot_delete.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "qemu_snapshot/snapshot_revert_control.hh"
#include "util/file.hh"
#include "util/job_journal.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>

#define LOG_MODULE "daemon.snapshot.delete"

namespace virtsnap::daemon {

Status QemuDriver::domain_snapshot_delete(const rpc::Client &c, const rpc::SnapshotRef &ref, uint32_t flags) {
    if (c.read_only)
        return fail(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN_SNAPSHOT,
                    "read only access prevents virDomainSnapshotDelete");
    if ((flags & VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN) && (flags & VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY))
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                    "Flags 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN' and 'VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY' "
                    "are mutually exclusive");
    TRY(check_flags(flags,
                    VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN | VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY |
                        VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY,
                    "qemuDomainSnapshotDelete"));
    auto dom = TRY(find(ref.dom));
    auto job = TRY(dom->job.begin("remoteDispatchDomainSnapshotDelete", qemu::JobOperation::SnapshotDelete));

    std::shared_ptr<conf::SnapshotList> list;
    std::string domain_name;
    bool persistent;
    {
        std::lock_guard lock(dom->mu);
        list = dom->snapshots;
        domain_name = dom->def->name;
        persistent = dom->persistent;
    }
    if (!list) list = TRY(snapshots_of(dom));
    conf::SnapshotDefPtr top = TRY(list->find(ref.name));

    if (flags & VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY) {
        TRY(list->remove_metadata(ref.name, conf::moment_remove_mode_from_flags(flags)));
        return ok();
    }

    // Victims: descendants leaves first, then the snapshot itself.
    std::vector<std::string> victims;
    if (flags & (VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN | VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY)) {
        victims = TRY(list->list_all_children(
            ref.name, VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS | VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL));
        std::reverse(victims.begin(), victims.end());
    }
    if (!(flags & VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY)) victims.push_back(ref.name);

    // Everything that still needs images, but `skip`.
    auto build_refs = [&](const std::string &skip) {
        std::shared_ptr<const conf::DomainDef> def, live;
        {
            std::lock_guard lock(dom->mu);
            def = dom->def;
            live = dom->live;
        }
        return qemu_snapshot::collect_image_refs(def.get(), live.get(), *list, skip);
    };

    // libvirt's validation for internal snapshots of a running domain, for
    // every victim before anything is touched.
    for (const auto &name : victims) {
        auto snap = TRY(list->find(name));
        if (snap->is_external() || !snap->domain) continue;
        std::shared_ptr<const conf::DomainDef> live;
        {
            std::lock_guard lock(dom->mu);
            live = dom->live;
        }
        if (!live) continue;
        for (const auto *d : qemu_snapshot::internal_snapshot_disks(*snap, *snap->domain)) {
            const conf::DomainDisk *ld = live->disk_by_target(d->target_dev);
            if (!ld || qemu_snapshot::ImageRefs::canonical(ld->src.path) !=
                           qemu_snapshot::ImageRefs::canonical(d->src.path))
                return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                            "disk image '" + d->target_dev + "' for internal snapshot '" + name +
                                "' is not the same as disk image currently used by VM");
        }
    }

    TRY(file::make_dirs(layout_.journal_dir(), 0700, VIR_FROM_QEMU));
    for (const auto &name : victims) {
        conf::SnapshotDefPtr snap = TRY(list->find(name));
        JournalHeader header;
        header.operation = "snapshot-delete";
        header.domain_uuid = dom->uuid.str();
        header.fields.set("domain", domain_name).set("snapshot", name).set("flags", flags);
        header.fields.set("mode", std::string(snap->is_external() ? "external" : "internal"));
        JobJournal journal = TRY(JobJournal::create(layout_.journal_dir(), header));
        auto finish_journal = [&journal](const char *outcome) {
            if (auto st = journal.finish(outcome); !st)
                VS_WARN("cannot end journal: %s", st.error().message().c_str());
        };
        qemu::DomainProcess *process;
        std::shared_ptr<const conf::DomainDef> live;
        {
            std::lock_guard lock(dom->mu);
            process = dom->process.get();
            live = dom->live;
        }
        if (process && !process->active()) process = nullptr;
        auto abort_fn = [d = dom.get()] { return d->job.abort_requested(); };

        if (!snap->is_external()) {
            // ---- internal ----
            Status st = ok();
            if (snap->domain && process && live) {
                std::vector<std::string> devices;
                auto graph = process->block_graph();
                for (const auto *d : qemu_snapshot::internal_snapshot_disks(*snap, *live)) {
                    auto info = qemu::qemu_img::info(d->src.path, "", true);
                    bool have = false;
                    if (info)
                        for (const auto &s : info->snapshots) have = have || s.name == name;
                    if (!have) continue;
                    for (const auto &g : graph)
                        if (g.target == d->target_dev) devices.push_back(g.top_node());
                }
                qemu_snapshot::ProcessDomainControl ctl(*process, "snapshot-delete", journal.id(), abort_fn);
                st = qemu_snapshot::delete_internal_active(ctl, name, devices, &journal);
                (void)process->set_job(std::nullopt);
            } else if (snap->domain) {
                st = qemu_snapshot::delete_internal_inactive(*snap, *snap->domain, &journal);
            }
            if (!st) {
                finish_journal("failed");
                return st;
            }
        } else {
            // ---- external ----
            qemu_snapshot::ImageRefs others = build_refs(name);
            auto plan = qemu_snapshot::plan_external_delete(*snap, others, process ? live.get() : nullptr);
            if (!plan) {
                finish_journal("rolled-back");
                return fail(std::move(plan).error());
            }
            bool commits = false;
            for (const auto &d : *plan) {
                VS_INFO("delete %s disk %s: %s overlay %s base %s", name.c_str(), d.target.c_str(),
                        std::string(qemu_snapshot::external_delete_mode_name(d.mode)).c_str(), d.overlay.c_str(),
                        d.base.c_str());
                commits = commits || d.mode == qemu_snapshot::ExternalDeleteMode::Commit;
            }
            // ══ commit point: from the first commit on, the delete only rolls forward ══
            if (auto st = journal.commit(qemu_snapshot::external_delete_commit_fields(*plan)); !st) {
                finish_journal("rolled-back");
                return st;
            }
            std::vector<qemu::DiskNodeNames> graph;
            if (process) graph = process->block_graph();
            bool graph_changed = false;
            for (const auto &d : *plan) {
                if (d.mode != qemu_snapshot::ExternalDeleteMode::Commit) continue;
                Status st = ok();
                if (process && d.running_depth >= 0) {
                    qemu_snapshot::ProcessDomainControl ctl(*process, "snapshot-delete", journal.id(), abort_fn);
                    auto relay = relay_commit_events(dom, *process, d);  // BLOCK_JOB(_2) events
                    st = qemu_snapshot::commit_online(ctl, d, graph, &journal);
                    (void)process->set_job(std::nullopt);
                    graph_changed = graph_changed || st.has_value();
                } else {
                    st = qemu_snapshot::commit_offline(d, &journal);
                }
                if (!st) {
                    // The journal stays: a restart finishes the commits it records.
                    return st;
                }
            }
            // Definitions and the other snapshots' stored chains lose the committed overlays.
            std::shared_ptr<const conf::DomainDef> pdef;
            {
                std::lock_guard lock(dom->mu);
                pdef = dom->def;
                live = dom->live;
            }
            auto new_def = pdef->clone();
            auto new_live = live ? live->clone() : std::unique_ptr<conf::DomainDef>();
            bool def_changed = qemu_snapshot::drop_committed_layers(*new_def, *plan);
            bool live_changed = new_live && qemu_snapshot::drop_committed_layers(*new_live, *plan);
            qemu_snapshot::drop_committed_layers_in_snapshots(*list, name, *plan);
            if (def_changed) {
                if (persistent) {
                    if (auto st = save_config(*new_def); !st)
                        VS_WARN("cannot save domain configuration: %s", st.error().message().c_str());
                }
                std::lock_guard lock(dom->mu);
                dom->def = std::shared_ptr<const conf::DomainDef>(std::move(new_def));
            }
            if (process && (live_changed || graph_changed)) {
                std::shared_ptr<const conf::DomainDef> nl(std::move(new_live));
                if (auto st = process->set_block_graph(graph, process->status().next_node_index); !st)
                    VS_WARN("cannot save block graph: %s", st.error().message().c_str());
                if (auto st = process->set_live_def(nl); !st)
                    VS_WARN("cannot save live definition: %s", st.error().message().c_str());
                std::lock_guard lock(dom->mu);
                dom->live = nl;
            }
            // Overlays and the memory image go only when nothing refers to them any more.
            qemu_snapshot::remove_unreferenced_images(*snap, *plan, build_refs(name), *list, &journal);
        }
        // ---- metadata ----
        if (auto st = list->remove_metadata(name, conf::MomentRemoveMode::Single); !st) {
            finish_journal("failed");
            return fail(std::move(st).error());
        }
        finish_journal("ok");
    }
    return ok();
}

}  // namespace virtsnap::daemon
