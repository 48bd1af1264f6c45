// snapshot_create.cc - the snapshot creation state machines (diagrams in the header).

#include "qemu_snapshot/snapshot_create.hh"

#include "qemu/block_graph.hh"
#include "qemu/qemu_img.hh"
#include "qemu_snapshot/snapshot_memory.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <thread>
#include <unistd.h>

#define LOG_MODULE "qemu_snapshot.create"

namespace virtsnap::qemu_snapshot {

namespace {

using conf::SnapshotLocation;
using namespace std::chrono_literals;

Error aborted_error() {
    return make_error(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "snapshot job: canceled by client");
}

Status unlink_file(const std::string &path) { return file::remove(path, VIR_FROM_QEMU); }

Status truncate_file(const std::string &path) {
    if (::truncate(path.c_str(), 0) < 0 && errno != ENOENT)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot truncate '" + path + "'"));
    return ok();
}

// Registers the undo of creating the file of `dp` (before it is created).
void add_overlay_file_undo(Txn &txn, const DiskPlan &dp) {
    if (dp.reuse) return;
    std::string path = dp.overlay_path;
    if (dp.existed)  // an empty file the user prepared: give it back empty
        txn.add_undo("truncate " + path, [path] { return truncate_file(path); });
    else
        txn.add_undo("unlink " + path, [path] { return unlink_file(path); });
}

std::string backing_format_of(const conf::StorageSource &src) {
    if (!src.format.empty()) return src.format;
    auto img = qemu::qemu_img::info(src.path, "", true);
    return img ? img->format : std::string("raw");
}

// Runs a QEMU job to its end, cancelling it when the client aborts.
Status wait_job(DomainControl &ctl, qemu::JobWatch &watch, std::chrono::milliseconds timeout) {
    qemu::Monitor &mon = ctl.monitor();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool cancelled = false;
    for (;;) {
        auto st = watch.wait_for({"concluded"}, 200ms);
        if (st) break;
        if (st.error().code != VIR_ERR_OPERATION_TIMEOUT) return fail(std::move(st).error());
        if (std::chrono::steady_clock::now() > deadline)
            return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "job '" + watch.job_id() + "' timed out");
        if (!cancelled && ctl.abort_requested()) {
            VS_INFO("cancelling job %s on request", watch.job_id().c_str());
            (void)mon.job_cancel(watch.job_id());
            cancelled = true;
        }
    }
    auto jobs = TRY(mon.query_jobs());
    std::optional<std::string> job_error;
    for (const auto &j : jobs)
        if (j.id == watch.job_id()) job_error = j.error;
    TRY(mon.job_dismiss(watch.job_id()));
    if (cancelled) return fail(aborted_error());
    if (job_error)
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "Failed to take snapshot: " + *job_error);
    return ok();
}

// Undo of one blockdev-snapshot: an active commit of `overlay` (still almost
// empty) into `old_top`, completed so the frontend pivots back to `old_top`.
Status commit_back(DomainControl &ctl, const std::string &overlay, const std::string &old_top,
                   std::chrono::milliseconds timeout) {
    qemu::Monitor &mon = ctl.monitor();
    qemu::JobWatch watch(mon, "undo-" + overlay);
    qemu::BlockCommitArgs a;
    a.job_id = watch.job_id();
    a.device = overlay;
    a.base_node = old_top;
    TRY(mon.block_commit(a));
    TRY(watch.wait_for({"ready"}, timeout));
    TRY(mon.job_complete(watch.job_id()));
    TRY(watch.wait_for({"concluded"}, timeout));
    auto jobs = TRY(mon.query_jobs());
    std::optional<std::string> job_error;
    for (const auto &j : jobs)
        if (j.id == watch.job_id()) job_error = j.error;
    TRY(mon.job_dismiss(watch.job_id()));
    if (job_error) return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "block commit failed: " + *job_error);
    return ok();
}

const qemu::DiskNodeNames *graph_disk(const std::vector<qemu::DiskNodeNames> &graph, const std::string &target) {
    for (const auto &d : graph)
        if (d.target == target) return &d;
    return nullptr;
}

qemu::LayerOptions layer_options_of(const conf::DomainDisk &disk) {
    qemu::LayerOptions o;
    for (const auto &[k, v] : disk.driver_attrs) {
        if (k == "cache") o.cache = v;
        else if (k == "discard") o.discard = v;
        else if (k == "io") o.io = v;
    }
    o.read_only = disk.readonly;
    return o;
}

// Ends a machine that reached its commit point: halt, or resume what was running.
void finish_run_state(DomainControl &ctl, bool halt, bool was_running, ActiveResult &out) {
    if (halt) {
        ctl.set_phase("halt");
        if (auto st = ctl.halt(); !st) {
            if (!out.late_error) out.late_error = std::move(st).error();
        } else {
            out.halted = true;
        }
        return;
    }
    if (was_running && !ctl.running()) {
        ctl.set_phase("resume");
        if (auto st = ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); !st) {
            if (!out.late_error)
                out.late_error = make_error(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                                            "resuming after snapshot failed");
        }
    }
}

}  // namespace

conf::StorageSource overlay_source(const DiskPlan &plan, const conf::StorageSource &old_top,
                                   std::optional<int> index) {
    conf::StorageSource s;
    s.type = conf::StorageSource::Type::File;
    s.path = plan.overlay_path;
    s.format = plan.overlay_format;
    s.index = index;
    auto backing = std::make_unique<conf::StorageSource>(old_top);
    backing->readonly = true;
    if (!index) backing->index.reset();
    s.backing = std::move(backing);
    return s;
}

// ---------------------------------------------------------------- internal, shut off

Status create_internal_inactive(const conf::SnapshotDef &def, const SnapshotPlan &plan, const conf::DomainDef &dom,
                                JobJournal *journal, const JournalFields &commit_fields) {
    StepLog log(journal);
    std::vector<const conf::DomainDisk *> disks;
    for (const auto &dp : plan.disks) {
        if (dp.location != SnapshotLocation::Internal) continue;
        const conf::DomainDisk &disk = dom.disks[dp.disk_index];
        if (disk.device != "disk") continue;
        if (!disk.src.is_local() || disk.src.path.empty())
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "can't manipulate inactive snapshots of disk '" + disk.target_dev + "'");
        if (!disk.src.format.empty() && disk.src.format != "qcow2")
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU,
                        "Disk device '" + disk.target_dev + "' does not support snapshotting");
        disks.push_back(&disk);
    }
    // A tag that already exists would make the undo delete someone else's snapshot.
    for (const auto *disk : disks) {
        auto snaps = TRY(qemu::qemu_img::snapshot_list(disk->src.path));
        for (const auto &s : snaps)
            if (s.name == def.name)
                return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                            "internal snapshot '" + def.name + "' already exists in disk '" + disk->target_dev + "'");
    }

    Txn txn;
    for (const auto *disk : disks) {
        std::string path = disk->src.path, tag = def.name;
        TRY(log.intent("qemu-img-snapshot", {{"disk", disk->target_dev}, {"path", path}, {"tag", tag}}));
        txn.add_undo("qemu-img snapshot -d " + path, [path, tag] { return qemu::qemu_img::snapshot_delete(path, tag); });
        if (auto st = qemu::qemu_img::snapshot_create(path, tag); !st) return fail(txn.abort(std::move(st).error()));
        TRY(log.done("qemu-img-snapshot"));
    }
    if (auto st = log.commit(commit_fields); !st) return fail(txn.abort(std::move(st).error()));
    txn.commit();
    return ok();
}

// ---------------------------------------------------------------- external, shut off

Result<std::unique_ptr<conf::DomainDef>> create_external_inactive(const conf::SnapshotDef &def,
                                                                  const SnapshotPlan &plan,
                                                                  const conf::DomainDef &dom, JobJournal *journal,
                                                                  const JournalFields &commit_fields) {
    (void)def;
    StepLog log(journal);
    auto out = dom.clone();
    Txn txn;
    for (const auto &dp : plan.disks) {
        if (dp.location != SnapshotLocation::External) continue;
        conf::DomainDisk &disk = out->disks[dp.disk_index];
        if (!dp.reuse) {
            std::string fmt = backing_format_of(disk.src);
            TRY(log.intent("create-overlay", {{"disk", dp.target},
                                               {"path", dp.overlay_path},
                                               {"existed", int64_t(dp.existed)}}));
            add_overlay_file_undo(txn, dp);
            if (auto st = qemu::qemu_img::create_overlay(dp.overlay_path, disk.src.path, fmt); !st)
                return fail(txn.abort(std::move(st).error()));
            TRY(log.done("create-overlay"));
            if (disk.src.format.empty()) disk.src.format = fmt;
        }
        disk.src = overlay_source(dp, disk.src, std::nullopt);
    }
    if (auto st = log.commit(commit_fields); !st) return fail(txn.abort(std::move(st).error()));
    txn.commit();
    return out;
}

void remove_created_overlays(const SnapshotPlan &plan) {
    for (const auto &dp : plan.disks) {
        if (dp.location != SnapshotLocation::External || dp.reuse) continue;
        Status st = dp.existed ? truncate_file(dp.overlay_path) : unlink_file(dp.overlay_path);
        if (!st) VS_WARN("cannot remove overlay %s: %s", dp.overlay_path.c_str(), st.error().message().c_str());
    }
}

// ---------------------------------------------------------------- internal, active

Result<ActiveResult> create_internal_active(ActiveRequest req) {
    DomainControl &ctl = *req.ctl;
    const conf::SnapshotDef &def = *req.def;
    const SnapshotPlan &plan = *req.plan;
    StepLog log(req.journal);
    ActiveResult out;
    out.graph = req.graph;
    out.next_node_index = req.next_node_index;
    out.live = req.live->clone();
    out.was_running = ctl.running();
    bool halt = plan.flags & VIR_DOMAIN_SNAPSHOT_CREATE_HALT;

    std::vector<std::string> devices;
    std::vector<std::string> paths;
    for (const auto &dp : plan.disks) {
        if (dp.location != SnapshotLocation::Internal) continue;
        const conf::DomainDisk &disk = req.live->disks[dp.disk_index];
        const qemu::DiskNodeNames *g = graph_disk(req.graph, dp.target);
        if (!g || g->layers.empty())
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "no block node for disk '" + dp.target + "'");
        devices.push_back(g->top_node());
        if (disk.src.is_local()) paths.push_back(disk.src.path);
    }
    if (devices.empty())
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "this domain does not have a device to take snapshots");

    // A tag that exists already would make QEMU refuse, and our undo would
    // then delete the older snapshot: refuse before touching anything.
    for (const auto &p : paths) {
        auto info = qemu::qemu_img::info(p, "", true);
        if (!info) continue;
        for (const auto &s : info->snapshots)
            if (s.name == def.name)
                return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                            "Failed to take snapshot: snapshot '" + def.name + "' already exists in '" + p + "'");
    }

    Txn txn;
    if (out.was_running) {
        ctl.set_phase("pause");
        TRY(log.intent("pause"));
        txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        if (auto st = ctl.pause(VIR_DOMAIN_PAUSED_SAVE); !st) return fail(txn.abort(std::move(st).error()));
        TRY(log.done("pause"));
    }
    if (ctl.abort_requested()) return fail(txn.abort(aborted_error()));

    ctl.set_phase("snapshot-save");
    JournalFields f{{"tag", def.name}, {"vmstate", devices.front()}};
    for (size_t i = 0; i < devices.size(); ++i) f.set("device" + std::to_string(i), devices[i]);
    if (auto st = log.intent("snapshot-save", f); !st) return fail(txn.abort(std::move(st).error()));
    qemu::Monitor &mon = ctl.monitor();
    std::string tag = def.name;
    txn.add_undo("snapshot-delete " + tag, [&ctl, tag, devices, &req]() -> Status {
        qemu::Monitor &m = ctl.monitor();
        qemu::JobWatch w(m, "snapshot-delete");
        TRY(m.snapshot_delete({w.job_id(), tag, "", devices}));
        return wait_job(ctl, w, req.job_timeout);
    });
    {
        qemu::JobWatch watch(mon, "snapshot-save");
        Status st = mon.snapshot_save({watch.job_id(), tag, devices.front(), devices});
        if (st) st = wait_job(ctl, watch, req.job_timeout);
        if (!st) return fail(txn.abort(std::move(st).error()));
    }
    // ══ commit point: every disk holds the snapshot ══
    if (auto st = log.commit(req.commit_fields); !st) return fail(txn.abort(std::move(st).error()));
    txn.commit();
    finish_run_state(ctl, halt, out.was_running, out);
    return out;
}

// ---------------------------------------------------------------- external, active

Result<ActiveResult> create_external_active(ActiveRequest req) {
    DomainControl &ctl = *req.ctl;
    const SnapshotPlan &plan = *req.plan;
    StepLog log(req.journal);
    qemu::Monitor &mon = ctl.monitor();
    ActiveResult out;
    out.graph = req.graph;
    out.live = req.live->clone();
    out.was_running = ctl.running();
    bool halt = plan.flags & VIR_DOMAIN_SNAPSHOT_CREATE_HALT;
    bool quiesce = plan.flags & VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE;
    bool live = plan.flags & VIR_DOMAIN_SNAPSHOT_CREATE_LIVE;
    bool memory = plan.memory == SnapshotLocation::External;
    qemu::NodeIndexAllocator alloc(req.next_node_index);

    Txn txn;
    auto failed = [&txn](Error e) { return fail(txn.abort(std::move(e))); };
#define STEP(expr)                                              \
    do {                                                        \
        if (auto _st = (expr); !_st) return failed(std::move(_st).error()); \
    } while (0)

    // 1. Guest file systems frozen.
    qemu::Agent *agent = nullptr;
    if (quiesce) {
        Error why;
        agent = ctl.agent(why);
        if (!agent) return fail(why);
        ctl.set_phase("fsfreeze");
        TRY(log.intent("fsfreeze"));
        txn.add_undo("guest-fsfreeze-thaw", [agent]() -> Status {
            TRY(agent->fsfreeze_thaw());
            return ok();
        });
        if (auto r = agent->fsfreeze_freeze(); !r) return failed(std::move(r).error());
        STEP(log.done("fsfreeze"));
    }

    // 2-3. Memory (the instant method writes it after the switch, below).
    bool instant = memory && live && req.instant && out.was_running;
    // The writer left the image's flush for after the resume (5b).
    MemoryFlush deferred_flush;
    bool flush_deferred = false;
    if (memory && !instant) {
        if (!req.memory_writer)
            return failed(make_error(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                                     "external memory snapshots are not supported by this build"));
        if (out.was_running && !live) {
            ctl.set_phase("pause");
            STEP(log.intent("pause"));
            txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
            STEP(ctl.pause(VIR_DOMAIN_PAUSED_SNAPSHOT));
            STEP(log.done("pause"));
        } else if (out.was_running) {
            // LIVE: QEMU stops the guest itself at convergence.
            txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        }
        ctl.set_phase("memory");
        std::string path = plan.memory_file;
        // [recovery] was_running: a LIVE pre-copy lets QEMU pause the guest itself.
        STEP(log.intent("memory", {{"path", path},
                                   {"existed", int64_t(file::exists(path))},
                                   {"was_running", int64_t(out.was_running)}}));
        if (!file::exists(path)) txn.add_undo("unlink " + path, [path] { return unlink_file(path); });
        bool may_defer = out.was_running && !halt;
        STEP(req.memory_writer(ctl, path, live && out.was_running, may_defer ? &deferred_flush : nullptr));
        flush_deferred = bool(deferred_flush);
        // [recovery] the memory is done once the image is flushed: a deferred
        // flush records it after the switch (5b).
        if (!flush_deferred) STEP(log.done("memory"));
        if (ctl.abort_requested()) return failed(aborted_error());
    }

    // 4. Overlays, as block nodes without backing.
    struct Prepared {
        const DiskPlan *plan;
        std::string old_top;
        unsigned index;
    };
    std::vector<Prepared> prepared;
    for (const auto &dp : plan.disks) {
        if (dp.location != SnapshotLocation::External) continue;
        const conf::DomainDisk &disk = req.live->disks[dp.disk_index];
        const qemu::DiskNodeNames *g = graph_disk(req.graph, dp.target);
        if (!g || g->layers.empty())
            return failed(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                                     "no block node for disk '" + dp.target + "'"));
        ctl.set_phase("prepare-" + dp.target);
        if (!dp.reuse) {
            std::string fmt = backing_format_of(disk.src);
            STEP(log.intent("create-overlay",
                            {{"disk", dp.target}, {"path", dp.overlay_path}, {"existed", int64_t(dp.existed)}}));
            add_overlay_file_undo(txn, dp);
            STEP(qemu::qemu_img::create_overlay(dp.overlay_path, disk.src.path, fmt));
            STEP(log.done("create-overlay"));
        }
        unsigned index = alloc.allocate();
        conf::StorageSource src = overlay_source(dp, disk.src, int(index));
        qemu::LayerOptions lo = layer_options_of(disk);
        auto nodes = qemu::layer_nodes(src, index, lo);
        if (!nodes) return failed(std::move(nodes).error());
        std::string storage = nodes->storage_name(), format = nodes->format_name();
        STEP(log.intent("blockdev-add", {{"disk", dp.target}, {"node", storage}}));
        txn.add_undo("blockdev-del " + storage, [&mon, storage] { return mon.blockdev_del(storage); });
        STEP(mon.blockdev_add(*nodes->storage.dict()));
        STEP(log.done("blockdev-add"));
        STEP(log.intent("blockdev-add", {{"disk", dp.target}, {"node", format}}));
        txn.add_undo("blockdev-del " + format, [&mon, format] { return mon.blockdev_del(format); });
        STEP(mon.blockdev_add(*nodes->format.dict()));
        STEP(log.done("blockdev-add"));
        prepared.push_back({&dp, g->top_node(), index});
        if (ctl.abort_requested()) return failed(aborted_error());
    }

    // 5a. The instant method with the driver's writer (write_memory_image):
    // every journal intent, undo and preparation while the guest runs; the
    // writer runs the switch (stop + the transaction) right before `migrate`,
    // so the guest-visible pause holds only stop, transaction, migrate and
    // QEMU's own write-protect set-up (docs/snapshots.md, "Instant snapshots:
    // the pause"). Intents are recorded ahead: recovery checks reality anyway.
    bool handed_off = instant && take_instant_writer_mark(mon);
    if (handed_off) {
        ctl.set_phase("instant");
        // QEMU flushes every image inside the pause (stop, then again in the
        // migration's set-up); new overlays would make that flush commit their
        // file system metadata there. Make them durable now, best effort.
        for (const auto &p : prepared) {
            UniqueFd fd(::open(p.plan->overlay_path.c_str(), O_RDONLY | O_CLOEXEC));
            if (fd.get() >= 0) (void)::fsync(fd.get());
        }
        qemu::Transaction t;
        JournalFields f;
        f.set("was_running", int64_t(out.was_running));
        if (auto md = req.commit_fields.str("metadata")) f.set("metadata", *md);
        for (size_t i = 0; i < prepared.size(); ++i) {
            t.blockdev_snapshot(prepared[i].old_top, qemu::format_node_name(prepared[i].index));
            f.set("node" + std::to_string(i), prepared[i].old_top);
            f.set("overlay" + std::to_string(i), qemu::format_node_name(prepared[i].index));
        }
        STEP(log.intent("pause"));
        txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        // Set just before the transaction is sent: only then can there be a switch to undo.
        auto sent = std::make_shared<bool>(false);
        if (!prepared.empty()) {
            STEP(log.intent("transaction", f));
            auto timeout = req.job_timeout;
            for (const auto &p : prepared) {
                std::string overlay = qemu::format_node_name(p.index), old_top = p.old_top;
                txn.add_undo("block-commit " + overlay, [&ctl, overlay, old_top, timeout, sent] {
                    return *sent ? commit_back(ctl, overlay, old_top, timeout) : ok();
                });
            }
        }
        std::string path = plan.memory_file;
        // "switch": "after": unlike the step-by-step order below, this record does not
        // prove the disks were switched; recovery checks the top nodes.
        STEP(log.intent("memory", {{"path", path}, {"existed", int64_t(file::exists(path))}, {"switch", std::string("after")}}));
        if (!file::exists(path)) txn.add_undo("unlink " + path, [path] { return unlink_file(path); });
        if (ctl.abort_requested()) return failed(aborted_error());
        InstantSwitch sw([&ctl] { return ctl.pause(VIR_DOMAIN_PAUSED_SNAPSHOT); },
                         [&mon, &t, sent, any = !prepared.empty()]() -> Status {
                             if (!any) return ok();
                             *sent = true;
                             return mon.transaction(t);
                         },
                         [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        STEP(req.memory_writer(ctl, path, true, nullptr));
        if (!sw.ran())
            return failed(make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                                     "the memory writer did not switch the disks at the instant"));
        STEP(log.done("pause"));
        if (!prepared.empty()) STEP(log.done("transaction"));
        STEP(log.done("memory"));
    }

    // 5. The commit point: one transaction switches every disk (the instant
    // method: the switch, then the memory capture; the image completing commits).
    if (instant && !handed_off) {
        ctl.set_phase("pause");
        STEP(log.intent("pause"));
        txn.add_undo("cont", [&ctl] { return ctl.running() ? ok() : ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED); });
        STEP(ctl.pause(VIR_DOMAIN_PAUSED_SNAPSHOT));
        STEP(log.done("pause"));
    }
    if (!prepared.empty() && !handed_off) {
        qemu::Transaction t;
        JournalFields f;
        // [recovery] what recovery needs to finish the snapshot when QEMU switched
        // the disks but the commit record was never written (instant method).
        f.set("was_running", int64_t(out.was_running));
        if (auto md = req.commit_fields.str("metadata")) f.set("metadata", *md);
        for (size_t i = 0; i < prepared.size(); ++i) {
            t.blockdev_snapshot(prepared[i].old_top, qemu::format_node_name(prepared[i].index));
            f.set("node" + std::to_string(i), prepared[i].old_top);
            f.set("overlay" + std::to_string(i), qemu::format_node_name(prepared[i].index));
        }
        ctl.set_phase("transaction");
        STEP(log.intent("transaction", f));
        if (instant || flush_deferred) {
            auto timeout = req.job_timeout;
            for (const auto &p : prepared) {
                std::string overlay = qemu::format_node_name(p.index), old_top = p.old_top;
                txn.add_undo("block-commit " + overlay, [&ctl, overlay, old_top, timeout] {
                    return commit_back(ctl, overlay, old_top, timeout);
                });
            }
        }
        STEP(mon.transaction(t));
    }
    if (instant && !handed_off) {
        ctl.set_phase("memory");
        std::string path = plan.memory_file;
        STEP(log.intent("memory", {{"path", path}, {"existed", int64_t(file::exists(path))}}));
        if (!file::exists(path)) txn.add_undo("unlink " + path, [path] { return unlink_file(path); });
        STEP(req.memory_writer(ctl, path, true, nullptr));
        STEP(log.done("memory"));
    }
    // 5b. A deferred flush: the image holds the guest of the pause, the disks
    // are switched, so the guest runs on while the image reaches the disk (a
    // flush is 20-40 % of a paused memory snapshot here: docs/performance.md).
    // The undos of the switch and of the image stay armed until it is done.
    if (flush_deferred) {
        if (!ctl.running()) {
            ctl.set_phase("resume");
            STEP(ctl.resume(VIR_DOMAIN_RUNNING_UNPAUSED));
        }
        ctl.set_phase("memory-flush");
        test_crash_point("memory-flush");
        STEP(deferred_flush());
        STEP(log.done("memory"));
    }
    // ══ committed: from here only forward ══
    txn.commit();
    if (auto st = log.commit(req.commit_fields); !st)
        VS_WARN("cannot record the commit of the snapshot: %s", st.error().message().c_str());
#undef STEP

    for (const auto &p : prepared) {
        conf::DomainDisk &disk = out.live->disks[p.plan->disk_index];
        ActiveResult::Switched sw;
        sw.target = p.plan->target;
        sw.old_path = disk.src.path;
        disk.src = overlay_source(*p.plan, disk.src, int(p.index));
        sw.new_src = disk.src;
        out.switched.push_back(std::move(sw));
        for (auto &g : out.graph)
            if (g.target == p.plan->target)
                g.layers.insert(g.layers.begin(), qemu::LayerNodeNames{p.index, qemu::storage_node_name(p.index),
                                                                       qemu::format_node_name(p.index)});
    }
    out.next_node_index = alloc.next();

    if (agent) {
        ctl.set_phase("fsthaw");
        if (auto r = agent->fsfreeze_thaw(); !r && !out.late_error) out.late_error = std::move(r).error();
    }
    finish_run_state(ctl, halt, out.was_running, out);
    return out;
}

}  // namespace virtsnap::qemu_snapshot
