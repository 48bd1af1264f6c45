// qemu_driver_snapshot_revert.cc - virDomainRevertToSnapshot: libvirt's checks
// in libvirt's order, then one of the revert machines of src/qemu_snapshot
// under the domain job and a crash-safe journal, then the definitions, the
// run state the snapshot (or the flags) ask for, events and "current".

#include "daemon/qemu_driver.hh"

#include "conf/snapshot_list.hh"
#include "daemon/check_flags.hh"
#include "qemu/host_probe.hh"
#include "qemu/qemu_img.hh"
#include "qemu/save_image.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "qemu_snapshot/snapshot_revert_control.hh"
#include "util/file.hh"
#include "util/job_journal.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "daemon.snapshot.revert"

namespace virtsnap::daemon {

namespace {

constexpr const char *kRunningName = "VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING";
constexpr const char *kPausedName = "VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED";

}  // namespace

Status QemuDriver::domain_revert_to_snapshot(const rpc::Client &c, const rpc::SnapshotRef &ref, uint32_t flags) {
    // ---- public API and driver flag checks ----
    if (c.read_only)
        return fail(VIR_ERR_OPERATION_DENIED, VIR_FROM_DOMAIN_SNAPSHOT,
                    "read only access prevents virDomainRevertToSnapshot");
    if ((flags & VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING) && (flags & VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED))
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_DOMAIN_SNAPSHOT,
                    std::string("Flags '") + kRunningName + "' and '" + kPausedName + "' are mutually exclusive");
    TRY(check_flags(flags,
                    VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING | VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED |
                        VIR_DOMAIN_SNAPSHOT_REVERT_FORCE | VIR_DOMAIN_SNAPSHOT_REVERT_RESET_NVRAM,
                    "qemuDomainRevertToSnapshot"));
    auto dom = TRY(find(ref.dom));
    auto job = TRY(dom->job.begin("remoteDispatchDomainRevertToSnapshot", qemu::JobOperation::SnapshotRevert));

    std::shared_ptr<const conf::DomainDef> persistent_def;
    std::shared_ptr<conf::SnapshotList> list;
    bool persistent, managed, active;
    {
        std::lock_guard lock(dom->mu);
        persistent_def = dom->def;
        list = dom->snapshots;
        persistent = dom->persistent;
        managed = dom->has_managed_save;
        active = dom->active();
    }
    if (!list) list = TRY(snapshots_of(dom));
    conf::SnapshotDefPtr snap = TRY(list->find(ref.name));
    const bool snap_online = snap->state == conf::SnapshotState::Running ||
                             snap->state == conf::SnapshotState::Paused;
    const unsigned run_flags = flags & (VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING | VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED);
    if (!persistent && !snap_online && !run_flags)
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "transient domain needs to request run or pause to revert to inactive snapshot");
    if (!snap->domain)
        return fail(VIR_ERR_SNAPSHOT_REVERT_RISKY, VIR_FROM_QEMU,
                    "snapshot '" + snap->name + "' lacks domain '" + persistent_def->name + "' rollback info");
    if (!(flags & VIR_DOMAIN_SNAPSHOT_REVERT_FORCE) && managed && !snap_online)
        return fail(VIR_ERR_SNAPSHOT_REVERT_RISKY, VIR_FROM_QEMU,
                    "snapshot without memory state, removal of existing managed saved state strongly "
                    "recommended to avoid corruption");
    if (snap->state == conf::SnapshotState::PmSuspended)
        return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                    "qemu doesn't support reversion of snapshot taken in PMSUSPENDED state");

    const bool external = snap->is_external();
    const bool memory_external = snap->memory == conf::SnapshotLocation::External && !snap->memory_file.empty();
    if (external && snap_online && !memory_external)
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                    "snapshot '" + snap->name + "' has no memory image to revert to");
    // Paused afterwards: the snapshot was paused or PAUSED asked for it; RUNNING wins.
    const bool want_paused = (flags & VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED) ||
                             (snap->state == conf::SnapshotState::Paused &&
                              !(flags & VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING));

    std::unique_ptr<conf::DomainDef> new_persistent = qemu_snapshot::adopt_snapshot_domain(
        snap->inactive_domain ? *snap->inactive_domain : *snap->domain, persistent_def->name, persistent_def->uuid);
    std::unique_ptr<conf::DomainDef> new_live =
        qemu_snapshot::adopt_snapshot_domain(*snap->domain, persistent_def->name, persistent_def->uuid);

    // Checks that need no journal: nothing is touched yet.
    if (!external) {
        const conf::DomainDef &tag_def = snap_online && !active ? *new_live : *new_persistent;
        if (!(snap_online && active))
            TRY(qemu_snapshot::check_internal_tag(qemu_snapshot::internal_snapshot_disks(*snap, tag_def),
                                                  snap->name));
    } else if (memory_external && snap_online) {
        TRY(qemu::open_save_image(snap->memory_file));
    }

    rpc::DomainRef dref;
    {
        std::lock_guard lock(dom->mu);
        dref = ref_of(*dom);
    }

    // ---- journal (records and recovery: docs/snapshots.md) ----
    JournalHeader header;
    header.operation = "snapshot-revert";
    header.domain_uuid = dom->uuid.str();
    header.fields.set("domain", persistent_def->name).set("snapshot", snap->name).set("flags", flags);
    header.fields.set("mode", std::string(external ? (memory_external ? "external-memory" : "external")
                                                   : (snap_online ? "internal-online" : "internal-offline")));
    header.fields.set("was_active", int64_t(active ? 1 : 0));
    header.fields.set("paused_after", int64_t(want_paused ? 1 : 0));
    header.fields.set("start_after", int64_t(run_flags ? 1 : 0));
    TRY(file::make_dirs(layout_.journal_dir(), 0700, VIR_FROM_QEMU));
    JobJournal journal = TRY(JobJournal::create(layout_.journal_dir(), header));
    auto finish_journal = [&journal](const char *outcome) {
        if (auto st = journal.finish(outcome); !st) VS_WARN("cannot end journal: %s", st.error().message().c_str());
    };

    // ---- helpers over the domain, each step journalled ----
    auto stop_qemu = [&]() -> Status {
        qemu::DomainProcess *p;
        {
            std::lock_guard lock(dom->mu);
            p = dom->process.get();
        }
        if (p && p->active()) {
            TRY(journal.intent("stop-qemu"));
            TRY(p->stop(VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT, VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT));
            (void)journal.done("stop-qemu");
        }
        release_stopped_process(dom);
        return ok();
    };
    auto start_qemu = [&](const conf::DomainDef &def, bool paused, const std::string &memory) -> Status {
        TRY(journal.intent("start-qemu", {{"paused", int64_t(paused ? 1 : 0)}, {"memory", memory}}));
        TRY(start_from_snapshot(dom, def, paused, memory));
        (void)journal.done("start-qemu");
        return ok();
    };
    auto install_persistent = [&](std::unique_ptr<conf::DomainDef> def) -> Status {
        if (persistent) TRY(save_config(*def));
        {
            std::lock_guard lock(dom->mu);
            dom->def = std::shared_ptr<const conf::DomainDef>(std::move(def));
        }
        if (persistent) emit_lifecycle(dom, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT);
        return ok();
    };

    std::optional<Error> late_error;
    auto note_late = [&late_error](Status st) {
        if (!st && !late_error) late_error = std::move(st).error();
    };

    if (!external && snap_online) {
        // ---- internal with memory: QEMU's snapshot-load ----
        bool started_here = false;
        if (!active) {
            if (auto st = start_qemu(*new_live, true, ""); !st) {
                finish_journal("rolled-back");
                return st;
            }
            started_here = true;
        }
        qemu::DomainProcess *process;
        std::shared_ptr<const conf::DomainDef> live;
        {
            std::lock_guard lock(dom->mu);
            process = dom->process.get();
            live = dom->live;
        }
        if (!process || !live) {
            finish_journal("rolled-back");
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_DOMAIN, "domain is not running");
        }
        auto disks = qemu_snapshot::internal_snapshot_disks(*snap, *live);
        auto graph = process->block_graph();
        qemu_snapshot::InternalActiveRevert req;
        req.tag = snap->name;
        req.journal = &journal;
        Status st = qemu_snapshot::check_internal_tag(disks, snap->name);
        if (st) {
            for (const auto *d : disks) {
                std::string node;
                for (const auto &g : graph)
                    if (g.target == d->target_dev) node = g.top_node();
                if (node.empty()) {
                    st = fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "no block node for disk '" + d->target_dev + "'");
                    break;
                }
                req.devices.push_back(node);
                auto info = qemu::qemu_img::info(d->src.path, "", true);
                if (info && req.vmstate.empty())
                    for (const auto &s : info->snapshots)
                        if (s.name == snap->name && s.vm_state_size > 0) req.vmstate = node;
            }
        }
        if (st && req.vmstate.empty())
            st = fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                      "snapshot '" + snap->name + "' has no saved memory state to revert to");
        if (st) {
            qemu_snapshot::ProcessDomainControl ctl(*process, "snapshot-revert", journal.id(),
                                                    [d = dom.get()] { return d->job.abort_requested(); });
            req.ctl = &ctl;
            st = qemu_snapshot::revert_internal_active(req);
            (void)process->set_job(std::nullopt);
        }
        if (!st && req.partly_loaded) {
            // Well defined, not hidden: the guest stays paused, an event says why.
            emit_lifecycle(dom, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR);
            finish_journal("failed");
            return st;
        }
        if (!st) {
            if (started_here) (void)stop_qemu();
            finish_journal("rolled-back");
            return st;
        }
        // ══ the guest is at the snapshot ══
        if (persistent) note_late(install_persistent(std::move(new_persistent)));
        if (!started_here) emit_lifecycle(dom, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT);
        if (want_paused) {
            std::lock_guard lock(dom->mu);
            dom->state = VIR_DOMAIN_PAUSED;
            dom->reason = VIR_DOMAIN_PAUSED_FROM_SNAPSHOT;
        } else {
            note_late(process->resume(VIR_DOMAIN_RUNNING_FROM_SNAPSHOT));
        }
    } else if (!external) {
        // ---- internal without memory: qemu-img snapshot -a on shut-off disks ----
        if (active) {
            // ══ commit point: stopping QEMU loses the running guest, so from here on forward only ══
            if (auto st = journal.commit(); !st) {
                finish_journal("rolled-back");
                return st;
            }
            if (auto st = stop_qemu(); !st) {
                finish_journal("failed");
                return st;
            }
        }
        if (auto st = qemu_snapshot::revert_internal_inactive(*snap, *new_persistent, &journal); !st) {
            finish_journal(journal.committed() ? "failed" : "rolled-back");
            return st;
        }
        auto boot_def = new_persistent->clone();
        note_late(install_persistent(std::move(new_persistent)));
        if (run_flags && !late_error) note_late(start_qemu(*boot_def, want_paused, ""));
    } else {
        // ---- external: new overlays on the snapshot's images ----
        qemu_snapshot::Txn txn;
        auto prepared = qemu_snapshot::revert_external_prepare(*snap, *new_persistent, txn, &journal);
        if (!prepared) {
            finish_journal("rolled-back");
            return fail(txn.abort(std::move(prepared).error()));
        }
        // The live definition runs on the same new overlays.
        for (auto &d : new_live->disks)
            if (const conf::DomainDisk *pd = prepared->def->disk_by_target(d.target_dev))
                for (const auto &sd : snap->disks)
                    if (sd.name == d.target_dev && sd.snapshot == conf::SnapshotLocation::External) d.src = pd->src;
        // ══ commit point: before the old QEMU is stopped; recovery installs these definitions ══
        const unsigned fmt = conf::kDomainFormatInactive | conf::kDomainFormatSecure;
        if (auto st = journal.commit({{"persistent", prepared->def->format_string(fmt)},
                                      {"live", new_live->format_string(fmt)}});
            !st) {
            finish_journal("rolled-back");
            return fail(txn.abort(std::move(st).error()));
        }
        txn.commit();
        note_late(stop_qemu());
        if (!late_error) note_late(install_persistent(std::move(prepared->def)));
        if (!late_error && memory_external && snap_online)
            note_late(start_qemu(*new_live, want_paused, snap->memory_file));
        else if (!late_error && run_flags)
            note_late(start_qemu(*new_live, want_paused, ""));
    }

    // ---- current ----
    if (auto st = list->set_current(snap->name); !st)
        VS_WARN("cannot make snapshot '%s' current: %s", snap->name.c_str(), st.error().message().c_str());
    finish_journal(late_error ? "incomplete" : "ok");
    (void)dref;
    if (late_error) return fail(std::move(*late_error));
    return ok();
}

Status QemuDriver::start_from_snapshot(const std::shared_ptr<qemu::DomainObj> &dom, const conf::DomainDef &def,
                                       bool paused, const std::string &memory_file) {
    std::optional<qemu::SaveImage> image;
    if (!memory_file.empty()) image = TRY(qemu::open_save_image(memory_file));
    auto live = def.clone();
    auto paths = TRY(qemu::ProcessPaths::for_domain(layout_, live->name));
    int id = domains_.allocate_id();
    live->id = id;
    qemu::DomainProcess::StartOptions opts;
    // With memory QEMU starts paused to load it; the guest runs only once it is in.
    opts.paused = paused || image;
    opts.host = host_probe();
    opts.incoming_fd = image ? image->fd.get() : -1;
    if (image) opts.incoming_mapped_ram = qemu::incoming_layout(image->header, config_.memory_image_channels);
    opts.running_reason = VIR_DOMAIN_RUNNING_FROM_SNAPSHOT;
    opts.paused_reason = VIR_DOMAIN_PAUSED_FROM_SNAPSHOT;
    opts.started_detail = VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT;
    opts.suspended_detail = VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT;
    auto process = TRY(qemu::DomainProcess::start(*live, paths, opts, process_handler(dom)));
    qemu::DomainProcess *p = process.get();
    auto [state, reason] = process->state();
    {
        std::lock_guard lock(dom->mu);
        dom->live = process->live_def() ? process->live_def() : std::shared_ptr<const conf::DomainDef>(std::move(live));
        dom->id = id;
        dom->state = state;
        dom->reason = reason;
        dom->process = std::move(process);
    }
    domains_.set_id(dom, id);
    if (image && !paused) TRY(p->resume(VIR_DOMAIN_RUNNING_FROM_SNAPSHOT));
    return ok();
}

}  // namespace virtsnap::daemon
