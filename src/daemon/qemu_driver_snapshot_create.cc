// qemu_driver_snapshot_create.cc - virDomainSnapshotCreateXML: libvirt's flow
// (flag checks, parse, validation, alignment, qemuSnapshotPrepare) before
// anything is touched, then one of the creation state machines of
// src/qemu_snapshot under the domain job, with a crash-safe journal, and the
// metadata commit through the domain's SnapshotList.

#include "daemon/qemu_driver.hh"

#include "conf/snapshot_align.hh"
#include "conf/snapshot_flags.hh"
#include "conf/snapshot_list.hh"
#include "qemu/agent.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "qemu_snapshot/snapshot_memory.hh"
#include "qemu_snapshot/snapshot_prepare.hh"
#include "util/file.hh"
#include "util/job_journal.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#define LOG_MODULE "daemon.snapshot"

namespace virtsnap::daemon {

namespace {

using qemu_snapshot::DomainControl;

// DomainControl over the domain's QEMU process.
class ProcessControl : public DomainControl {
public:
    ProcessControl(qemu::DomainObj &dom, qemu::DomainProcess &process, std::string job_id, unsigned flags)
        : dom_(dom), process_(process), job_id_(std::move(job_id)), flags_(flags) {}

    qemu::Monitor &monitor() override { return process_.monitor(); }
    qemu::Agent *agent(Error &why) override {
        qemu::Agent *a = process_.agent();
        if (!a) {
            why = qemu::Agent::not_configured_error();
            return nullptr;
        }
        if (!a->connected()) {
            why = qemu::Agent::not_connected_error();
            return nullptr;
        }
        return a;
    }
    bool running() override { return process_.state().first == VIR_DOMAIN_RUNNING; }
    Status pause(int reason) override { return process_.suspend(reason); }
    Status resume(int reason) override { return process_.resume(reason); }
    Status halt() override {
        return process_.stop(VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT, VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT);
    }
    bool abort_requested() override { return dom_.job.abort_requested(); }
    void set_phase(const std::string &phase) override {
        Status st = process_.set_job(qemu::StatusJob{"snapshot-create", phase, job_id_, flags_});
        if (!st) VS_WARN("cannot record job phase: %s", st.error().message().c_str());
    }

private:
    qemu::DomainObj &dom_;
    qemu::DomainProcess &process_;
    std::string job_id_;
    unsigned flags_;
};

std::string mode_name(const qemu_snapshot::SnapshotPlan &plan, bool active) {
    std::string m = plan.has_external ? "external" : "internal";
    if (plan.memory == conf::SnapshotLocation::External) m += "-memory";
    return m + (active ? "-active" : "-inactive");
}

}  // namespace

Result<rpc::SnapshotRef> QemuDriver::domain_snapshot_create_xml(const rpc::Client &c, const rpc::DomainRef &ref,
                                                                const std::string &xml, uint32_t flags) {
    auto dom = TRY(find(ref));
    bool active, persistent;
    int state;
    {
        std::lock_guard lock(dom->mu);
        active = dom->active();
        persistent = dom->persistent;
        state = dom->state;
    }
    TRY(conf::validate_snapshot_create_flags(flags, active, persistent, c.read_only));
    unsigned parse_flags = conf::snapshot_parse_flags_for_create(flags, active);
    std::unique_ptr<conf::SnapshotDef> def = TRY(conf::SnapshotDef::parse_string(xml, parse_flags));
    TRY(conf::validate_snapshot_create_def(*def, flags, active, conf::SnapshotState(state)));

    auto job = TRY(dom->job.begin("remoteDispatchDomainSnapshotCreateXML", qemu::JobOperation::SnapshotCreate));
    auto started = std::chrono::steady_clock::now();

    // The state may have changed while we waited for the job.
    std::shared_ptr<const conf::DomainDef> persistent_def, live_def;
    qemu::DomainProcess *process = nullptr;
    {
        std::lock_guard lock(dom->mu);
        if (dom->active() != active)
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "domain state changed during the snapshot request");
        state = dom->state;
        persistent_def = dom->def;
        live_def = dom->live;
        process = dom->process.get();
    }
    if (active && (!process || !live_def))
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_DOMAIN, "domain is not running");
    std::shared_ptr<conf::SnapshotList> list = TRY(snapshots_of(dom));
    rpc::DomainRef dref;
    {
        std::lock_guard lock(dom->mu);
        dref = ref_of(*dom);
    }

    if (flags & VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE) {
        auto stored = TRY(list->redefine(std::move(def), flags));
        return rpc::SnapshotRef{stored->name, dref};
    }

    // ---- alignment and qemuSnapshotPrepare: nothing touched yet ----
    std::unique_ptr<conf::DomainDef> snap_domain;
    if (active) {
        snap_domain = TRY(conf::DomainDef::parse_string(
            live_def->format_string(conf::kDomainFormatInactive | conf::kDomainFormatSecure |
                                    conf::kDomainFormatMigratable),
            conf::kDomainParseInactive));
    } else {
        snap_domain = persistent_def->clone();
    }
    std::unique_ptr<conf::DomainDef> snap_inactive =
        active && persistent ? persistent_def->clone() : std::unique_ptr<conf::DomainDef>();
    TRY(conf::snapshot_create_align(*def, std::move(snap_domain), std::move(snap_inactive), flags, active,
                                    conf::SnapshotState(state)));
    const conf::DomainDef &in_use = active ? *live_def : *persistent_def;
    qemu_snapshot::SnapshotPlan plan = TRY(qemu_snapshot::snapshot_prepare(*def, in_use, active, flags));
    // qemuSnapshotPrepareDiskExternal writes the overlay format it defaulted
    // into the definition, so the snapshot XML names it (<driver type='qcow2'/>).
    for (auto &sd : def->disks)
        if (sd.snapshot == conf::SnapshotLocation::External && sd.driver_type.empty()) sd.driver_type = "qcow2";
    bool metadata = !(flags & VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA);
    if (metadata && list->contains(def->name))
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_DOMAIN, "domain moment " + def->name + " already exists");
    def->parent_name = list->current_name().value_or("");

    // LIVE of a running domain: the instant method when the host can (INSTANT
    // insists on it; snapshot_live_method = "precopy" selects libvirt's method).
    bool instant = false;
    if (active && state == VIR_DOMAIN_RUNNING && plan.memory == conf::SnapshotLocation::External &&
        (flags & VIR_DOMAIN_SNAPSHOT_CREATE_LIVE) &&
        ((flags & conf::kSnapshotCreateInstant) || config_.snapshot_live_method == "instant")) {
        Status host = qemu_snapshot::check_background_snapshot(process->monitor());
        if (host) host = qemu_snapshot::check_memory_image_room(def->memory_file, live_def->max_memory_kib * 1024);
        if (!host && (flags & conf::kSnapshotCreateInstant)) return fail(std::move(host).error());
        if (!host) VS_INFO("using pre-copy for a live snapshot: %s", host.error().message().c_str());
        instant = host.has_value();
    }
    // snapshot_image_format = "sparse": the memory of a snapshot taken without
    // the instant method (whose stream goes through a pipe) in the mapped-ram
    // layout; a QEMU without it is refused here, untouched.
    std::optional<qemu::MappedRam> memory_layout;
    if (active && plan.memory == conf::SnapshotLocation::External && !instant) {
        memory_layout = snapshot_layout();
        if (memory_layout) TRY(qemu::check_mapped_ram(process->monitor(), *memory_layout));
    }

    // ---- the journal: intent before every side effect ----
    JournalHeader header;
    header.operation = "snapshot-create";
    header.domain_uuid = dom->uuid.str();
    header.fields.set("domain", persistent_def->name)
        .set("snapshot", def->name)
        .set("flags", plan.flags)
        .set("mode", mode_name(plan, active) + (instant ? "-instant" : ""));
    TRY(file::make_dirs(layout_.journal_dir(), 0700, VIR_FROM_QEMU));
    JobJournal journal = TRY(JobJournal::create(layout_.journal_dir(), header));
    JournalFields commit_fields;
    if (metadata) commit_fields.set("metadata", conf::snapshot_metadata_file_text(*def, dom->uuid, true));

    // domjobinfo: elapsed time, and memory progress while RAM is written.
    auto tracker = std::make_shared<qemu::MigrationTracker>(qemu::JobOperation::SnapshotCreate);
    bool memory_phase = plan.memory == conf::SnapshotLocation::External;
    dom->job.set_progress_provider([tracker, started, memory_phase] {
        if (memory_phase) return tracker->stats();
        qemu::JobStats s;
        s.type = VIR_DOMAIN_JOB_UNBOUNDED;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        s.params.push_back({VIR_DOMAIN_JOB_OPERATION, int32_t(qemu::JobOperation::SnapshotCreate)});
        s.params.push_back({VIR_DOMAIN_JOB_TIME_ELAPSED, uint64_t(ms.count())});
        return s;
    });

    std::optional<Error> late_error;
    if (!active) {
        // ---- shut off ----
        if (plan.has_internal) {
            if (auto st = qemu_snapshot::create_internal_inactive(*def, plan, *persistent_def, &journal, commit_fields);
                !st) {
                (void)journal.finish("rolled-back");
                return fail(std::move(st).error());
            }
        } else {
            auto newdef = qemu_snapshot::create_external_inactive(*def, plan, *persistent_def, &journal, commit_fields);
            if (!newdef) {
                (void)journal.finish("rolled-back");
                return fail(std::move(newdef).error());
            }
            // The definition moves to the overlays; a failed save undoes the files.
            if (auto st = save_config(**newdef); !st) {
                qemu_snapshot::remove_created_overlays(plan);
                (void)journal.finish("rolled-back");
                return fail(std::move(st).error());
            }
            std::lock_guard lock(dom->mu);
            dom->def = std::shared_ptr<const conf::DomainDef>(std::move(*newdef));
        }
    } else {
        // ---- running or paused ----
        ProcessControl ctl(*dom, *process, journal.id(), plan.flags);
        qemu_snapshot::ActiveRequest req;
        req.ctl = &ctl;
        req.def = def.get();
        req.plan = &plan;
        req.live = live_def.get();
        req.graph = process->block_graph();
        req.next_node_index = process->status().next_node_index;
        req.journal = &journal;
        req.commit_fields = commit_fields;
        req.instant = instant;
        if (plan.memory == conf::SnapshotLocation::External) {
            std::string mem_xml =
                live_def->format_string(conf::kDomainFormatInactive | conf::kDomainFormatSecure |
                                        conf::kDomainFormatMigratable);
            bool was_running = state == VIR_DOMAIN_RUNNING;
            // Only a paused guest's stream: a pre-copy LIVE one runs beside the
            // guest, and the instant method has its own relay.
            bool direct_io = !memory_layout && !(flags & VIR_DOMAIN_SNAPSHOT_CREATE_LIVE) &&
                             choose_memory_direct_io(config_.memory_image_direct_io, live_def->max_memory_kib << 10,
                                                     false);
            req.memory_writer = [mem_xml, was_running, tracker, instant, memory_layout, direct_io, d = dom.get()](
                                    DomainControl &ctl2, const std::string &path, bool,
                                    qemu_snapshot::MemoryFlush *deferred_flush) -> Status {
                qemu_snapshot::MemoryImageOptions o;
                o.domain_xml = mem_xml;
                o.was_running = was_running;
                o.tracker = tracker.get();
                o.deferred_flush = deferred_flush;
                if (instant) o.capabilities = {"background-snapshot"};
                o.mapped_ram = memory_layout;
                o.direct_io = direct_io;
                o.abort_requested = [d] { return d->job.abort_requested(); };
                return qemu_snapshot::write_memory_image(ctl2.monitor(), path, o);
            };
        }
        auto res = plan.has_internal ? qemu_snapshot::create_internal_active(std::move(req))
                                     : qemu_snapshot::create_external_active(std::move(req));
        if (process->active()) (void)process->set_job(std::nullopt);
        if (!res) {
            (void)journal.finish("rolled-back");
            return fail(std::move(res).error());
        }
        late_error = res->late_error;
        if (!res->switched.empty()) {
            std::shared_ptr<const conf::DomainDef> new_live(std::move(res->live));
            if (!res->halted) {
                if (auto st = process->set_block_graph(res->graph, res->next_node_index); !st)
                    VS_WARN("cannot save block graph: %s", st.error().message().c_str());
                if (auto st = process->set_live_def(new_live); !st)
                    VS_WARN("cannot save live definition: %s", st.error().message().c_str());
            }
            // The persistent definition follows where its disk had the same source.
            auto newpers = persistent_def->clone();
            bool changed = false;
            for (const auto &sw : res->switched) {
                conf::DomainDisk *pd = newpers->disk_by_target(sw.target);
                if (!pd || pd->src.path != sw.old_path) continue;
                qemu_snapshot::DiskPlan dp;
                dp.overlay_path = sw.new_src.path;
                dp.overlay_format = sw.new_src.format;
                pd->src = qemu_snapshot::overlay_source(dp, pd->src, std::nullopt);
                changed = true;
            }
            if (changed && persistent) {
                if (auto st = save_config(*newpers); !st)
                    VS_WARN("cannot save domain configuration: %s", st.error().message().c_str());
            }
            std::lock_guard lock(dom->mu);
            if (!res->halted) dom->live = new_live;
            if (changed) dom->def = std::shared_ptr<const conf::DomainDef>(std::move(newpers));
        }
        if (res->halted) release_stopped_process(dom);
    }

    // ---- metadata: the snapshot exists on disk; now it gets a name ----
    std::string name = def->name;
    if (metadata) {
        auto stored = list->add_created(std::move(def), true);
        if (!stored) {
            // The journal stays: recovery writes the metadata from its commit record.
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "unable to save metadata for snapshot " + name);
        }
    }
    if (auto st = journal.finish("ok"); !st) VS_WARN("cannot end journal: %s", st.error().message().c_str());

    if (plan.memory == conf::SnapshotLocation::External) {
        qemu::JobStats done = tracker->final_stats(VIR_DOMAIN_JOB_COMPLETED);
        {
            std::lock_guard lock(dom->mu);
            dom->completed_job = done;
        }
        if (events_) {
            std::vector<rpc::TypedParam> params;
            for (const auto &p : done.params)
                params.push_back({p.field, std::visit([](const auto &v) { return rpc::TypedValue(v); }, p.value)});
            events_->domain_job_completed(dref, params);
        }
    }
    if (late_error) return fail(std::move(*late_error));
    return rpc::SnapshotRef{name, dref};
}

}  // namespace virtsnap::daemon
