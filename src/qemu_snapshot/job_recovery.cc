// job_recovery.cc - start-up recovery of interrupted snapshot jobs (diagram in the header).

#include "qemu_snapshot/job_recovery.hh"

#include "qemu/block_graph.hh"
#include "qemu/memory_migration.hh"
#include "qemu/memory_relay.hh"
#include "qemu/qemu_img.hh"
#include "qemu/save_image.hh"
#include "qemu_snapshot/snapshot_create.hh"
#include "qemu_snapshot/snapshot_delete.hh"
#include "qemu_snapshot/snapshot_revert.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#define LOG_MODULE "qemu_snapshot.recovery"

namespace virtsnap::qemu_snapshot {

namespace {

using namespace std::chrono_literals;

std::vector<const JournalStep *> steps_named(const JournalState &st, std::string_view name) {
    std::vector<const JournalStep *> out;
    for (const auto &s : st.steps)
        if (s.name == name) out.push_back(&s);
    return out;
}

void warn_on(const Status &st, const char *what) {
    if (!st) VS_WARN("recovery: %s: %s", what, st.error().message().c_str());
}

// Keeps the first error of a sequence of best-effort actions.
struct FirstError {
    std::optional<Error> err;
    void note(Status st, const char *what) {
        if (st) return;
        VS_WARN("recovery: %s: %s", what, st.error().message().c_str());
        if (!err) err = std::move(st).error();
    }
    Status result() { return err ? fail(std::move(*err)) : ok(); }
};

// libvirt-<N>-format -> N
std::optional<unsigned> node_index(const std::string &node) {
    unsigned n = 0;
    int used = 0;
    if (std::sscanf(node.c_str(), "libvirt-%u-format%n", &n, &used) == 1 && size_t(used) == node.size()) return n;
    return std::nullopt;
}

Status unlink_or_truncate(const std::string &path, bool existed) {
    if (!existed) return file::remove(path, VIR_FROM_QEMU);
    if (::truncate(path.c_str(), 0) < 0 && errno != ENOENT)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot truncate '" + path + "'"));
    return ok();
}

// The last state of QEMU job `id` once it is no longer running, or has
// reached a status of `stop_at` (nullopt: QEMU has no such job); not
// dismissed. A pending job is finalized.
Result<std::optional<qemu::JobInfo>> wait_job_end(qemu::Monitor &mon, const std::string &id,
                                                  const std::vector<std::string> &stop_at,
                                                  std::chrono::milliseconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        auto jobs = TRY(mon.query_jobs());
        const qemu::JobInfo *job = nullptr;
        for (const auto &j : jobs)
            if (j.id == id) job = &j;
        if (!job) return std::optional<qemu::JobInfo>();
        if (job->status == "concluded" || job->status == "null" ||
            std::find(stop_at.begin(), stop_at.end(), job->status) != stop_at.end())
            return std::optional<qemu::JobInfo>(*job);
        if (job->status == "pending") (void)mon.job_finalize(id);
        if (std::chrono::steady_clock::now() > deadline)
            return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "job '" + id + "' did not end");
        std::this_thread::sleep_for(100ms);
    }
}

// Waits until job `id` has ended and dismisses it. Returns its error text, if any.
Result<std::optional<std::string>> settle_job(qemu::Monitor &mon, const std::string &id,
                                              std::chrono::milliseconds wait) {
    auto job = TRY(wait_job_end(mon, id, {}, wait));
    if (!job) return std::optional<std::string>();
    TRY(mon.job_dismiss(id));
    return job->error;
}

Status delete_tag_with_qemu(qemu::Monitor &mon, const std::string &tag, const std::vector<std::string> &devices,
                            const RecoveryOptions &o) {
    TRY(settle_job(mon, "snapshot-delete", 1s));  // a leftover of an earlier attempt
    TRY(mon.snapshot_delete({"snapshot-delete", tag, "", devices}));
    auto err = TRY(settle_job(mon, "snapshot-delete", o.job_wait));
    if (err) return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "snapshot-delete of '" + tag + "': " + *err);
    return ok();
}

Status delete_tag_with_qemu_img(const std::string &path, const std::string &tag) {
    auto snaps = TRY(qemu::qemu_img::snapshot_list(path));
    for (const auto &s : snaps)
        if (s.name == tag) return qemu::qemu_img::snapshot_delete(path, tag);
    return ok();
}

bool qemu_paused(qemu::Monitor &mon) {
    auto s = mon.query_status();
    return s && !s->running;
}

// The metadata of the snapshot, stored unless it is already there.
Status write_metadata(RecoveryTarget &t, const std::string &text) {
    conf::SnapshotList *list = t.snapshots();
    if (!list) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "no snapshot list for the domain of the journal");
    auto def = TRY(conf::snapshot_parse_metadata_file(text));
    if (list->contains(def->name)) return ok();
    VS_INFO("recovery: writing metadata of snapshot '%s'", def->name.c_str());
    TRY(list->add_created(std::move(def), true));
    return ok();
}

// Marks a memory image whose stream QEMU completed as complete (what
// SaveImageWriter::finalize would have done): fsync, Save magic, fsync.
Status finalize_memory_image(const std::string &path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot open '" + path + "'"));
    unsigned char head[qemu::SaveImageHeader::kSize];
    if (::pread(fd.get(), head, sizeof head, 0) != ssize_t(sizeof head))
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "memory image '" + path + "' has no header");
    // decode() refuses the partial magic (libvirt's check): read the rest as if complete.
    const auto &partial = qemu::SaveImageHeader::kMagicPartial;
    bool was_partial = std::memcmp(head, partial.data(), partial.size()) == 0;
    if (was_partial) std::memcpy(head, qemu::SaveImageHeader::kMagicComplete.data(), partial.size());
    auto hdr = TRY(qemu::SaveImageHeader::decode(head, sizeof head));
    struct stat sb {};
    if (::fstat(fd.get(), &sb) < 0 || uint64_t(sb.st_size) <= hdr.stream_offset())
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "memory image '" + path + "' holds no memory");
    if (!was_partial) return ok();
    if (::fsync(fd.get()) < 0) return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot sync '" + path + "'"));
    hdr.complete = true;
    auto bytes = hdr.encode();
    if (::pwrite(fd.get(), bytes.data(), bytes.size(), 0) != ssize_t(bytes.size()) || ::fsync(fd.get()) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot complete '" + path + "'"));
    return ok();
}

// Waits for a memory migration QEMU may still be running; true when it completed.
// Past the wait it gives up: through the relay writing `image` when there is
// one (migrate_cancel would leave QEMU 7.2 unable to snapshot again), else by
// cancelling.
bool memory_migration_completed(qemu::Monitor &mon, const RecoveryOptions &o, const std::string &image = {}) {
    auto ended = qemu::wait_for_migration_end(mon, o.migration_wait);
    if (ended) return *ended == "completed";
    if (image.empty() || !qemu::abandon_memory_relay(image)) (void)mon.migrate_cancel();
    return false;
}

// Cancels a memory migration still running (the job is being rolled back).
void cancel_memory_migration(qemu::Monitor &mon) {
    auto info = mon.query_migrate();
    if (!info) return;
    static const std::set<std::string> running = {"setup", "active", "pre-switchover", "device", "cancelling",
                                                  "wait-unplug"};
    if (!running.count(info->status)) return;
    VS_INFO("recovery: cancelling the memory migration (%s)", info->status.c_str());
    (void)mon.migrate_cancel();
    for (int i = 0; i < 600; ++i) {
        auto again = mon.query_migrate();
        if (!again || !running.count(again->status)) return;
        std::this_thread::sleep_for(100ms);
    }
}

// One disk the transaction was to switch.
struct SwitchPlan {
    std::string disk;       // target
    std::string old_top;    // node
    std::string overlay;    // format node
    std::string path;       // overlay file
    std::string format = "qcow2";
    bool switched = false;
};

class CreateRecovery {
public:
    CreateRecovery(RecoveryTarget &t, const JournalState &st, const RecoveryOptions &o) : t_(t), st_(st), o_(o) {}

    Status run() {
        const JournalFields &h = st_.header.fields;
        mode_ = h.str("mode").value_or("");
        flags_ = unsigned(h.num("flags").value_or(0));
        VS_INFO("recovery: snapshot-create '%s' of domain %s (%s), %s", h.str("snapshot").value_or("?").c_str(),
                h.str("domain").value_or("?").c_str(), mode_.c_str(),
                st_.committed ? "committed: rolling forward" : "not committed");
        if (mode_.ends_with("-inactive")) return inactive();
        return active();
    }

private:
    bool halt() const { return flags_ & VIR_DOMAIN_SNAPSHOT_CREATE_HALT; }

    // ---- shut off ----
    Status inactive() {
        FirstError fe;
        if (mode_.starts_with("internal")) {
            std::string tag = st_.header.fields.str("snapshot").value_or("");
            if (!st_.committed)
                for (const auto *s : steps_named(st_, "qemu-img-snapshot")) {
                    auto path = s->intent.str("path");
                    if (path && file::exists(*path))
                        fe.note(delete_tag_with_qemu_img(*path, s->intent.str("tag").value_or(tag)),
                                "qemu-img snapshot -d");
                }
        } else {
            if (st_.committed) {
                // The definition may not have been saved: it follows the overlays.
                std::vector<SwitchPlan> sw = overlays_from_commit();
                fe.note(persistent_follows(sw), "persistent definition");
            } else {
                for (const auto *s : steps_named(st_, "create-overlay"))
                    if (auto path = s->intent.str("path"))
                        fe.note(unlink_or_truncate(*path, s->intent.num("existed").value_or(0)), "overlay");
            }
        }
        if (st_.committed)
            if (auto md = st_.commit_fields.str("metadata")) fe.note(write_metadata(t_, *md), "metadata");
        return fe.result();
    }

    // Overlays of a committed shut-off external snapshot: the metadata's
    // external disks, else the overlays the job created.
    std::vector<SwitchPlan> overlays_from_commit() {
        std::vector<SwitchPlan> out;
        if (auto md = st_.commit_fields.str("metadata")) {
            if (auto def = conf::snapshot_parse_metadata_file(*md)) {
                for (const auto &d : (*def)->disks) {
                    if (d.snapshot != conf::SnapshotLocation::External || d.path.empty()) continue;
                    SwitchPlan p;
                    p.disk = d.name;
                    p.path = d.path;
                    if (!d.driver_type.empty()) p.format = d.driver_type;
                    p.switched = true;
                    out.push_back(p);
                }
                return out;
            }
        }
        for (const auto *s : steps_named(st_, "create-overlay")) {
            SwitchPlan p;
            p.disk = s->intent.str("disk").value_or("");
            p.path = s->intent.str("path").value_or("");
            p.switched = true;
            out.push_back(p);
        }
        return out;
    }

    // The persistent definition moves the disks whose source is the overlay's
    // backing file to the overlay (qemu-img says what the backing file is).
    Status persistent_follows(const std::vector<SwitchPlan> &sws) {
        auto pers = t_.persistent_def();
        if (!pers) return ok();
        auto def = pers->clone();
        bool changed = false;
        for (const auto &sw : sws) {
            if (!sw.switched || sw.path.empty() || !file::exists(sw.path)) continue;
            conf::DomainDisk *d = def->disk_by_target(sw.disk);
            if (!d || d->src.path == sw.path) continue;
            auto info = qemu::qemu_img::info(sw.path, "", true);
            if (!info || (info->full_backing_filename != d->src.path && info->backing_filename != d->src.path))
                continue;
            DiskPlan dp;
            dp.overlay_path = sw.path;
            dp.overlay_format = sw.format;
            if (d->src.format.empty()) d->src.format = info->backing_format.empty() ? "raw" : info->backing_format;
            d->src = overlay_source(dp, d->src, std::nullopt);
            changed = true;
        }
        if (!changed) return ok();
        VS_INFO("recovery: the persistent definition follows the overlays");
        return t_.save_persistent(std::shared_ptr<const conf::DomainDef>(std::move(def)));
    }

    // ---- running or paused (or QEMU gone since) ----
    Status active() {
        FirstError fe;
        qemu::Monitor *mon = t_.monitor();
        if (mon && mon->closed()) mon = nullptr;
        const JournalStep *txn = st_.find("transaction");
        const JournalStep *mem = st_.find("memory");
        const JournalStep *save = st_.find("snapshot-save");
        bool was_running = st_.intended("pause") ||
                           (mem && mem->intent.num("was_running").value_or(0)) ||
                           (txn && txn->intent.num("was_running").value_or(0));
        bool instant = mode_.ends_with("-instant");

        // Which disks did QEMU switch to their overlay?
        std::vector<SwitchPlan> sws = switch_plans(txn, mon);
        bool any_switched = false;
        for (const auto &s : sws) any_switched = any_switched || s.switched;

        // Memory: complete (keep) or not (unlink), and whether the snapshot exists.
        std::optional<std::string> metadata;
        bool memory_complete = !mem;  // no memory step: nothing to complete
        if (st_.committed) {
            metadata = st_.commit_fields.str("metadata");
            memory_complete = true;
        } else if (any_switched) {
            if (instant && mem) {
                // QEMU writes the memory after the switch, also while we were gone.
                std::string path = mem->intent.str("path").value_or("");
                if (mon && memory_migration_completed(*mon, o_, path)) {
                    // A gated snapshot's relay may still be writing the end of
                    // the stream; one that failed left an image without memory.
                    if (!qemu::wait_for_memory_relay(path, o_.migration_wait)) {
                        VS_WARN("recovery: the memory image %s is still being written, or gone", path.c_str());
                    } else {
                        Status f = finalize_memory_image(path);
                        memory_complete = f.has_value();
                        warn_on(f, "memory image");
                    }
                }
            } else if (!instant) {
                memory_complete = !mem || mem->done;
            }
            // Without QEMU nobody can say the switch happened: no snapshot record.
            if (memory_complete && txn && mon) metadata = txn->intent.str("metadata");
        } else if (mon && mem && instant) {
            // A gated snapshot can be running without a switch (the daemon
            // died with the gate shut; its relay opened it). Cancelling would
            // leave QEMU 7.2 unable to take another background snapshot: drop
            // the stream through the relay and let QEMU's snapshot complete.
            std::string path = mem->intent.str("path").value_or("");
            if (!path.empty() && qemu::abandon_memory_relay(path)) {
                (void)memory_migration_completed(*mon, o_, path);
                (void)qemu::wait_for_memory_relay(path, o_.migration_wait);
            } else {
                cancel_memory_migration(*mon);
            }
        } else if (mon && mem) {
            cancel_memory_migration(*mon);
        }
        if (mem && !memory_complete) {
            std::string path = mem->intent.str("path").value_or("");
            if (!path.empty() && !mem->intent.num("existed").value_or(0)) {
                VS_INFO("recovery: removing the incomplete memory image %s", path.c_str());
                fe.note(file::remove(path, VIR_FROM_QEMU), "memory image");
            }
        }

        // Disks.
        if (mode_.starts_with("internal")) {
            if (!st_.committed && save) fe.note(undo_internal(*save, mon), "internal snapshot");
        } else {
            fe.note(rollback_unswitched(sws, mon), "roll back");
            if (any_switched) {
                fe.note(live_follows(sws, mon), "live definition");
                fe.note(persistent_follows(sws), "persistent definition");
            }
        }

        if (metadata) fe.note(write_metadata(t_, *metadata), "metadata");
        else if (any_switched || st_.committed)
            VS_WARN("recovery: snapshot '%s' dropped (memory incomplete or no metadata); its overlays stay in use",
                    st_.header.fields.str("snapshot").value_or("?").c_str());

        // Guest.
        if (mon) {
            if (st_.intended("fsfreeze")) fe.note(t_.thaw(), "guest-fsfreeze-thaw");
            bool snapshot_exists = st_.committed;
            if (snapshot_exists && halt()) {
                fe.note(t_.halt(), "halt");
            } else if (was_running && qemu_paused(*mon)) {
                VS_INFO("recovery: resuming the guest the job paused");
                fe.note(t_.resume(), "cont");
            }
        }
        return fe.result();
    }

    std::vector<SwitchPlan> switch_plans(const JournalStep *txn, qemu::Monitor *mon) {
        std::vector<SwitchPlan> out;
        // disk of every node added, overlay file of every disk
        std::map<std::string, std::string> disk_of_node, path_of_disk;
        for (const auto *s : steps_named(st_, "blockdev-add"))
            disk_of_node[s->intent.str("node").value_or("")] = s->intent.str("disk").value_or("");
        for (const auto *s : steps_named(st_, "create-overlay"))
            path_of_disk[s->intent.str("disk").value_or("")] = s->intent.str("path").value_or("");
        if (!txn) return out;
        std::set<std::string> tops;
        std::map<std::string, qemu::NamedBlockNode> nodes;
        if (mon) {
            if (auto blocks = mon->query_block())
                for (const auto &b : *blocks)
                    if (b.inserted) tops.insert(b.inserted->node_name);
            if (auto named = mon->query_named_block_nodes())
                for (auto &n : *named) nodes[n.node_name] = n;
        }
        for (int i = 0;; ++i) {
            auto node = txn->intent.str("node" + std::to_string(i));
            auto overlay = txn->intent.str("overlay" + std::to_string(i));
            if (!node || !overlay) break;
            SwitchPlan p;
            p.old_top = *node;
            p.overlay = *overlay;
            p.disk = disk_of_node[*overlay];
            p.path = path_of_disk[p.disk];
            if (auto it = nodes.find(*overlay); it != nodes.end()) {
                if (!it->second.file.empty()) p.path = it->second.file;
                if (!it->second.drv.empty()) p.format = it->second.drv;
            }
            // Committed: switched by definition. QEMU gone: keeping the overlay
            // is always safe (empty, it shows its backing file), dropping it is not.
            p.switched = st_.committed || !mon || tops.count(*overlay);
            out.push_back(p);
        }
        return out;
    }

    // blockdev-del of added nodes nothing uses, unlink of overlays we created
    // for disks that were not switched.
    Status rollback_unswitched(const std::vector<SwitchPlan> &sws, qemu::Monitor *mon) {
        FirstError fe;
        std::set<std::string> kept_disks, kept_paths;
        for (const auto &s : sws)
            if (s.switched) {
                kept_disks.insert(s.disk);
                kept_paths.insert(s.path);
            }
        if (mon) {
            std::set<std::string> present;
            if (auto named = mon->query_named_block_nodes())
                for (const auto &n : *named) present.insert(n.node_name);
            auto adds = steps_named(st_, "blockdev-add");
            for (auto it = adds.rbegin(); it != adds.rend(); ++it) {  // format node first
                std::string node = (*it)->intent.str("node").value_or("");
                if (kept_disks.count((*it)->intent.str("disk").value_or("")) || !present.count(node)) continue;
                VS_INFO("recovery: blockdev-del %s", node.c_str());
                fe.note(mon->blockdev_del(node), "blockdev-del");
            }
        }
        for (const auto *s : steps_named(st_, "create-overlay")) {
            std::string path = s->intent.str("path").value_or("");
            if (path.empty() || kept_disks.count(s->intent.str("disk").value_or("")) || kept_paths.count(path))
                continue;
            VS_INFO("recovery: removing overlay %s", path.c_str());
            fe.note(unlink_or_truncate(path, s->intent.num("existed").value_or(0)), "overlay");
        }
        return fe.result();
    }

    // The live definition and block graph follow what QEMU uses.
    Status live_follows(const std::vector<SwitchPlan> &sws, qemu::Monitor *mon) {
        auto live = t_.live_def();
        if (!mon || !live) return ok();
        auto def = live->clone();
        auto graph = t_.block_graph();
        unsigned next = t_.next_node_index();
        bool changed = false;
        for (const auto &sw : sws) {
            if (!sw.switched) continue;
            auto index = node_index(sw.overlay);
            conf::DomainDisk *d = def->disk_by_target(sw.disk);
            if (!index || !d || sw.path.empty()) continue;
            if (d->src.path != sw.path) {
                DiskPlan dp;
                dp.overlay_path = sw.path;
                dp.overlay_format = sw.format;
                d->src = overlay_source(dp, d->src, int(*index));
                changed = true;
            }
            for (auto &g : graph)
                if (g.target == sw.disk && g.top_node() != sw.overlay) {
                    g.layers.insert(g.layers.begin(), qemu::LayerNodeNames{*index, qemu::storage_node_name(*index),
                                                                           qemu::format_node_name(*index)});
                    changed = true;
                }
            if (*index >= next) {
                next = *index + 1;
                changed = true;
            }
        }
        if (!changed) return ok();
        VS_INFO("recovery: the live definition follows the overlays QEMU uses");
        return t_.set_live(std::shared_ptr<const conf::DomainDef>(std::move(def)), std::move(graph), next);
    }

    // A snapshot-save that did not commit: let QEMU's job end, delete the tag.
    Status undo_internal(const JournalStep &save, qemu::Monitor *mon) {
        std::string tag = save.intent.str("tag").value_or("");
        if (tag.empty()) return ok();
        if (mon) {
            std::vector<std::string> devices;
            for (int i = 0;; ++i) {
                auto d = save.intent.str("device" + std::to_string(i));
                if (!d) break;
                devices.push_back(*d);
            }
            TRY(settle_job(*mon, "snapshot-save", o_.job_wait));
            VS_INFO("recovery: deleting internal snapshot '%s'", tag.c_str());
            return delete_tag_with_qemu(*mon, tag, devices, o_);
        }
        // QEMU is gone: the images are free for qemu-img.
        FirstError fe;
        auto pers = t_.persistent_def();
        auto live = t_.live_def();
        const conf::DomainDef *def = live ? live.get() : pers.get();
        if (!def) return ok();
        for (const auto &d : def->disks)
            if (d.src.is_local() && !d.src.path.empty() && file::exists(d.src.path) &&
                (d.src.format.empty() || d.src.format == "qcow2"))
                fe.note(delete_tag_with_qemu_img(d.src.path, tag), "qemu-img snapshot -d");
        return fe.result();
    }

    RecoveryTarget &t_;
    const JournalState &st_;
    const RecoveryOptions &o_;
    std::string mode_;
    unsigned flags_ = 0;
};

// ---------------------------------------------------------------- revert and delete

std::vector<std::string> numbered(const JournalFields &f, const std::string &prefix) {
    std::vector<std::string> out;
    for (int i = 0;; ++i) {
        auto v = f.str(prefix + std::to_string(i));
        if (!v) break;
        out.push_back(*v);
    }
    return out;
}

// Read with -U: QEMU may have the image open.
bool has_tag(const std::string &path, const std::string &tag) {
    auto info = qemu::qemu_img::info(path, "", true);
    if (!info) return false;
    for (const auto &s : info->snapshots)
        if (s.name == tag) return true;
    return false;
}

// What the machines of snapshot_delete.hh need of the domain, during recovery.
class RecoveryControl : public DomainControl {
public:
    RecoveryControl(RecoveryTarget &t, qemu::Monitor &mon) : t_(t), mon_(mon) {}
    qemu::Monitor &monitor() override { return mon_; }
    qemu::Agent *agent(Error &why) override {
        why = make_error(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "no guest agent during recovery");
        return nullptr;
    }
    bool running() override { return !qemu_paused(mon_); }
    Status pause(int) override { return mon_.stop(); }
    Status resume(int) override { return t_.resume(); }
    Status halt() override { return t_.halt(); }
    bool abort_requested() override { return false; }

private:
    RecoveryTarget &t_;
    qemu::Monitor &mon_;
};

// The pieces of recovery both handlers need: the domain's snapshot, its
// definitions, the run state.
class MomentRecovery {
protected:
    MomentRecovery(RecoveryTarget &t, JobJournal &j, const JournalState &st, const RecoveryOptions &o)
        : t_(t), j_(j), st_(st), o_(o) {
        const JournalFields &h = st_.header.fields;
        name_ = h.str("snapshot").value_or("");
        mode_ = h.str("mode").value_or("");
        mon_ = t_.monitor();
        if (mon_ && mon_->closed()) mon_ = nullptr;
    }

    Result<conf::SnapshotDefPtr> snapshot() {
        conf::SnapshotList *list = t_.snapshots();
        if (!list) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "no snapshot list for the domain of the journal");
        return list->find(name_);
    }

    // The persistent definition becomes `def` (saved only when it differs).
    Status install_persistent(const conf::DomainDef &def) {
        auto pers = t_.persistent_def();
        if (!pers) return ok();  // transient: nothing is saved
        const unsigned fmt = conf::kDomainFormatInactive | conf::kDomainFormatSecure;
        if (pers->format_string(fmt) == def.format_string(fmt)) return ok();
        VS_INFO("recovery: installing the persistent definition of the revert to '%s'", name_.c_str());
        return t_.save_persistent(std::shared_ptr<const conf::DomainDef>(def.clone()));
    }

    bool paused() { return mon_ && qemu_paused(*mon_); }

    // Stops the QEMU the domain runs (the one the revert replaces).
    Status stop_qemu() {
        if (!mon_) return ok();
        VS_INFO("recovery: stopping the QEMU the revert replaces");
        TRY(t_.halt());
        mon_ = nullptr;
        return ok();
    }

    RecoveryTarget &t_;
    JobJournal &j_;
    const JournalState &st_;
    const RecoveryOptions &o_;
    std::string name_, mode_;
    qemu::Monitor *mon_ = nullptr;
};

class RevertRecovery : MomentRecovery {
public:
    RevertRecovery(RecoveryTarget &t, JobJournal &j, const JournalState &st, const RecoveryOptions &o)
        : MomentRecovery(t, j, st, o) {
        const JournalFields &h = st_.header.fields;
        paused_after_ = h.num("paused_after").value_or(0) != 0;
        start_after_ = h.num("start_after").value_or(0) != 0;
    }

    Status run() {
        VS_INFO("recovery: snapshot-revert to '%s' of domain %s (%s), %s", name_.c_str(),
                st_.header.fields.str("domain").value_or("?").c_str(), mode_.c_str(),
                st_.committed ? "committed: rolling forward" : "not committed");
        if (mode_ == "internal-online") return online();
        if (mode_ == "internal-offline") return offline();
        return external();
    }

private:
    // The snapshot's definitions under the domain's name and uuid.
    Result<std::unique_ptr<conf::DomainDef>> adopted(bool inactive) {
        auto snap = TRY(snapshot());
        const conf::DomainDef *src = inactive && snap->inactive_domain ? snap->inactive_domain.get()
                                                                        : snap->domain.get();
        if (!src)
            return fail(VIR_ERR_SNAPSHOT_REVERT_RISKY, VIR_FROM_QEMU, "snapshot '" + name_ + "' has no domain");
        auto uuid = Uuid::parse(st_.header.domain_uuid);
        if (!uuid) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "bad domain uuid in the journal");
        return adopt_snapshot_domain(*src, st_.header.fields.str("domain").value_or(src->name), *uuid);
    }

    Status make_current() {
        conf::SnapshotList *list = t_.snapshots();
        if (!list || list->current_name() == std::optional<std::string>(name_)) return ok();
        return list->set_current(name_);
    }

    // After the revert the guest runs unless it is to stay paused.
    void settle_run_state(FirstError &fe) {
        if (mon_ && !paused_after_ && paused()) {
            VS_INFO("recovery: resuming the reverted guest");
            fe.note(t_.resume_from_snapshot(), "cont");
        }
    }

    // ---- internal, QEMU's snapshot-load ----
    Status online() {
        if (st_.committed) return online_forward();
        const JournalStep *load = st_.find("snapshot-load");
        if (load && load->done) return online_failed(load->result);
        if (load && mon_) {
            auto job = TRY(wait_job_end(*mon_, "snapshot-load", {}, o_.job_wait));
            if (job) {
                if (!job->error) {
                    // Recorded before the job goes, as the job itself does.
                    TRY(j_.commit({{"tag", name_}}));
                    (void)mon_->job_dismiss("snapshot-load");
                    return online_forward();
                }
                bool before = snapshot_load_failed_before_loading(*job->error);
                JournalFields r{{"error", *job->error}, {"loaded", int64_t(before ? 0 : 1)}};
                TRY(j_.done("snapshot-load", r));
                (void)mon_->job_dismiss("snapshot-load");
                return online_failed(r);
            }
            // No job: the command never reached QEMU.
        } else if (load) {
            VS_WARN("recovery: QEMU of the domain is gone; the revert to '%s' did not complete", name_.c_str());
            return ok();
        }
        return online_back();
    }

    Status online_forward() {
        FirstError fe;
        if (mon_) (void)settle_job(*mon_, "snapshot-load", 1s);
        auto def = adopted(true);
        if (def) fe.note(install_persistent(**def), "persistent definition");
        else fe.note(fail(std::move(def).error()), "persistent definition");
        settle_run_state(fe);
        fe.note(make_current(), "current");
        return fe.result();
    }

    Status online_back() {
        FirstError fe;
        if (st_.intended("start-qemu")) {
            if (mon_) fe.note(stop_qemu(), "stop");
            else fe.note(t_.discard_unattached(), "discard QEMU");
        } else if (st_.intended("pause") && paused()) {
            VS_INFO("recovery: resuming the guest the revert paused");
            fe.note(t_.resume(), "cont");
        }
        return fe.result();
    }

    Status online_failed(const JournalFields &r) {
        if (!r.num("loaded").value_or(1)) return online_back();
        VS_WARN("recovery: the revert to '%s' failed while QEMU loaded it (%s); the guest stays paused",
                name_.c_str(), r.str("error").value_or("?").c_str());
        if (mon_) t_.note_failed_revert();
        return ok();
    }

    // ---- internal, qemu-img snapshot -a ----
    Status offline() {
        FirstError fe;
        if (!st_.committed) {
            for (const auto *s : steps_named(st_, "save-undo"))
                if (auto path = s->intent.str("path")) fe.note(restore_revert_undo(*path), "undo tag");
            return fe.result();
        }
        auto def = TRY(adopted(true));
        const bool started = st_.intended("start-qemu");
        if (mon_ && !started) fe.note(stop_qemu(), "stop");
        if (!mon_ && started) fe.note(t_.discard_unattached(), "discard QEMU");
        // No guest has run on the disks since the revert: applying again is harmless.
        if (!mon_ && !st_.done("start-qemu")) {
            auto snap = TRY(snapshot());
            for (const auto *d : internal_snapshot_disks(*snap, *def)) {
                if (!file::exists(d->src.path)) continue;
                VS_INFO("recovery: %s goes to '%s'", d->src.path.c_str(), name_.c_str());
                fe.note(qemu::qemu_img::snapshot_apply(d->src.path, name_), "qemu-img snapshot -a");
                fe.note(drop_revert_undo(d->src.path), "undo tag");
            }
        }
        fe.note(install_persistent(*def), "persistent definition");
        if (start_after_ && !mon_ && !st_.done("start-qemu")) fe.note(start(*def, ""), "start");
        else settle_run_state(fe);
        fe.note(make_current(), "current");
        return fe.result();
    }

    // ---- external: new overlays ----
    Status external() {
        FirstError fe;
        if (!st_.committed) {
            for (const auto *s : steps_named(st_, "create-overlay"))
                if (auto path = s->intent.str("path")) {
                    VS_INFO("recovery: removing the new overlay %s", path->c_str());
                    fe.note(file::remove(*path, VIR_FROM_QEMU), "overlay");
                }
            return fe.result();
        }
        auto pers = TRY(conf::DomainDef::parse_string(TRY(st_.commit_fields.need_str("persistent")),
                                                      conf::kDomainParseInactive));
        auto live = TRY(conf::DomainDef::parse_string(TRY(st_.commit_fields.need_str("live")),
                                                      conf::kDomainParseInactive));
        const bool started = st_.intended("start-qemu");
        if (mon_ && !started) fe.note(stop_qemu(), "stop");
        if (!mon_ && started) fe.note(t_.discard_unattached(), "discard QEMU");
        fe.note(install_persistent(*pers), "persistent definition");
        std::string memory;
        if (mode_ == "external-memory") {
            auto snap = snapshot();
            if (snap) memory = (*snap)->memory_file;
        }
        if ((start_after_ || !memory.empty()) && !mon_ && !st_.done("start-qemu")) {
            VS_INFO("recovery: starting the domain on the new overlays%s", memory.empty() ? "" : " from memory");
            fe.note(start(*live, memory), "start");
        } else {
            settle_run_state(fe);
        }
        fe.note(make_current(), "current");
        return fe.result();
    }

    // Journalled like the driver's start, so a crash during recovery does not
    // stop the QEMU that recovery started and revert its disks again.
    Status start(const conf::DomainDef &def, const std::string &memory) {
        TRY(j_.intent("start-qemu", {{"paused", int64_t(paused_after_ ? 1 : 0)}, {"memory", memory}}));
        TRY(t_.start(def, paused_after_, memory));
        return j_.done("start-qemu");
    }

    bool paused_after_ = false, start_after_ = false;
};

class DeleteRecovery : MomentRecovery {
public:
    DeleteRecovery(RecoveryTarget &t, JobJournal &j, const JournalState &st, const RecoveryOptions &o)
        : MomentRecovery(t, j, st, o) {}

    Status run() {
        VS_INFO("recovery: snapshot-delete of '%s' (%s), %s", name_.c_str(), mode_.c_str(),
                st_.committed ? "committed: rolling forward" : "not committed: nothing changed");
        if (!st_.committed) return ok();
        conf::SnapshotList *list = t_.snapshots();
        if (!list) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "no snapshot list for the domain of the journal");
        if (!list->contains(name_)) return ok();  // the metadata went last: all done
        auto snap = TRY(list->find(name_));
        if (mode_ == "internal") TRY(internal(*snap));
        else TRY(external(*snap, *list));
        VS_INFO("recovery: removing the metadata of snapshot '%s'", name_.c_str());
        TRY(list->remove_metadata(name_, conf::MomentRemoveMode::Single));
        return ok();
    }

private:
    Status internal(const conf::SnapshotDef &snap) {
        if (!snap.domain) return ok();
        std::string tag = st_.commit_fields.str("tag").value_or(name_);
        auto devices = numbered(st_.commit_fields, "device");
        std::vector<std::string> paths;
        for (const auto *d : internal_snapshot_disks(snap, *snap.domain)) paths.push_back(d->src.path);
        if (mon_) {
            if (devices.empty()) return ok();  // no disk QEMU has open held the tag
            TRY(settle_job(*mon_, "snapshot-delete", o_.job_wait));  // the job the daemon started
            bool left = false;
            for (const auto &p : paths) left = left || (file::exists(p) && has_tag(p, tag));
            if (!left) return ok();
            VS_INFO("recovery: deleting internal snapshot '%s' again", tag.c_str());
            JournalFields f{{"tag", tag}};
            for (size_t i = 0; i < devices.size(); ++i) f.set("device" + std::to_string(i), devices[i]);
            TRY(j_.intent("snapshot-delete", f));
            TRY(delete_tag_with_qemu(*mon_, tag, devices, o_));
            return j_.done("snapshot-delete");
        }
        FirstError fe;
        for (const auto &p : paths)
            if (file::exists(p)) fe.note(delete_tag_with_qemu_img(p, tag), "qemu-img snapshot -d");
        return fe.result();
    }

    Status external(const conf::SnapshotDef &snap, conf::SnapshotList &list) {
        auto plan = TRY(external_delete_from_commit(st_.commit_fields));
        auto graph = t_.block_graph();
        bool graph_changed = false;
        for (const auto &d : plan) {
            if (d.mode != ExternalDeleteMode::Commit) continue;
            if (d.running_depth >= 0 && mon_) {
                TRY(commit_running(d, graph, graph_changed));
            } else if (d.running_depth >= 0 && pivoted(d)) {
                VS_INFO("recovery: %s was pivoted to %s before QEMU went", d.overlay.c_str(), d.base.c_str());
                TRY(rebase_children(d));
            } else {
                TRY(commit_offline_again(d));
            }
        }
        // Definitions and the other snapshots' stored chains lose the committed overlays.
        std::shared_ptr<const conf::DomainDef> live = t_.live_def();
        if (mon_ && live) {
            auto nl = live->clone();
            bool changed = drop_committed_layers(*nl, plan);
            if (changed || graph_changed) {
                live = std::shared_ptr<const conf::DomainDef>(std::move(nl));
                TRY(t_.set_live(live, graph, t_.next_node_index()));
            }
        }
        if (auto pers = t_.persistent_def()) {
            auto np = pers->clone();
            if (drop_committed_layers(*np, plan)) TRY(t_.save_persistent(std::shared_ptr<const conf::DomainDef>(std::move(np))));
        }
        drop_committed_layers_in_snapshots(list, name_, plan);
        auto pers = t_.persistent_def();
        ImageRefs after = collect_image_refs(pers.get(), mon_ ? live.get() : nullptr, list, name_);
        remove_unreferenced_images(snap, plan, after, list, &j_);
        return ok();
    }

    // The disk's active commit reached the pivot, and the guest may write to B.
    bool pivoted(const ExternalDiskDelete &d) {
        for (const auto &s : st_.steps)
            if (s.name == "pivot" && s.intent.str("disk") == std::optional<std::string>(d.target) && s.done)
                return true;
        return false;
    }

    // True while O is in the chain of an image QEMU has open as a disk's top.
    bool in_running_chain(const std::string &overlay) {
        auto blocks = mon_->query_block();
        if (!blocks) return true;  // cannot tell: do not drop what may be in use
        for (const auto &b : *blocks) {
            if (!b.inserted || b.inserted->file.empty()) continue;
            if (ImageRefs::canonical(b.inserted->file) == overlay) return true;
            auto chain = qemu::qemu_img::info_chain(b.inserted->file, "", true);
            if (!chain) continue;
            for (const auto &img : *chain)
                if (ImageRefs::canonical(img.filename) == overlay) return true;
        }
        return false;
    }

    Status commit_running(const ExternalDiskDelete &d, std::vector<qemu::DiskNodeNames> &graph, bool &changed) {
        const std::string job = "commit-" + d.target;
        auto info = TRY(wait_job_end(*mon_, job, {"ready"}, o_.job_wait));
        if (info && info->status == "ready") {
            VS_INFO("recovery: pivoting %s to %s", d.overlay.c_str(), d.base.c_str());
            TRY(j_.intent("pivot", {{"disk", d.target}, {"overlay", d.overlay}}));
            TRY(mon_->job_complete(job));
            info = TRY(wait_job_end(*mon_, job, {}, o_.job_wait));
            TRY(j_.done("pivot"));
        }
        if (info) {
            if (info->error) VS_WARN("recovery: %s ended with: %s", job.c_str(), info->error->c_str());
            (void)mon_->job_dismiss(job);
        }
        // O's nodes as QEMU names them.
        std::map<std::string, std::string> file_of;
        if (auto named = mon_->query_named_block_nodes())
            for (const auto &n : *named) file_of[n.node_name] = ImageRefs::canonical(n.file);
        qemu::DiskNodeNames *g = nullptr;
        for (auto &x : graph)
            if (x.target == d.target) g = &x;
        if (in_running_chain(d.overlay)) {
            VS_INFO("recovery: committing %s into %s again", d.overlay.c_str(), d.base.c_str());
            RecoveryControl ctl(t_, *mon_);
            TRY(commit_online(ctl, d, graph, &j_));
            changed = true;
            return ok();
        }
        if (!g) return ok();
        for (size_t k = 0; k < g->layers.size(); ++k) {
            const auto &l = g->layers[k];
            bool is_o = file_of.count(l.format) ? file_of[l.format] == d.overlay : int(k) == d.running_depth;
            if (!is_o || k + 1 == g->layers.size()) continue;
            for (const auto &node : {l.format, l.storage})
                if (file_of.count(node)) {
                    VS_INFO("recovery: blockdev-del %s", node.c_str());
                    warn_on(mon_->blockdev_del(node), "blockdev-del");
                }
            g->layers.erase(g->layers.begin() + long(k));
            changed = true;
            break;
        }
        return rebase_children(d);
    }

    Status commit_offline_again(const ExternalDiskDelete &d) {
        if (file::exists(d.overlay)) {
            VS_INFO("recovery: qemu-img commit %s (into %s)", d.overlay.c_str(), d.base.c_str());
            TRY(j_.intent("qemu-img-commit", {{"disk", d.target}, {"overlay", d.overlay}, {"base", d.base}}));
            TRY(qemu::qemu_img::commit(d.overlay));
            TRY(j_.done("qemu-img-commit"));
        }
        return rebase_children(d);
    }

    Status rebase_children(const ExternalDiskDelete &d) {
        for (const auto &img : d.rebase) {
            if (!file::exists(img)) continue;
            auto info = qemu::qemu_img::info(img, "", true);
            if (info && ImageRefs::canonical(info->full_backing_filename) == d.base) continue;
            TRY(qemu::qemu_img::rebase(img, d.base, d.base_format, true));
        }
        return ok();
    }
};

}  // namespace

Status recover_snapshot_create(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                               const RecoveryOptions &options) {
    (void)journal;  // every action is repeatable: nothing to record
    return CreateRecovery(target, state, options).run();
}

Status recover_snapshot_revert(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                               const RecoveryOptions &options) {
    return RevertRecovery(target, journal, state, options).run();
}

Status recover_snapshot_delete(RecoveryTarget &target, JobJournal &journal, const JournalState &state,
                               const RecoveryOptions &options) {
    return DeleteRecovery(target, journal, state, options).run();
}

void add_recovery_handlers(JournalRecovery &recovery, std::function<RecoveryTarget &(const JournalState &)> target_of,
                           RecoveryOptions options) {
    recovery.add("snapshot-create", [target_of, options](JobJournal &j, const JournalState &st) -> Status {
        return recover_snapshot_create(target_of(st), j, st, options);
    });
    recovery.add("snapshot-revert", [target_of, options](JobJournal &j, const JournalState &st) -> Status {
        return recover_snapshot_revert(target_of(st), j, st, options);
    });
    recovery.add("snapshot-delete", [target_of, options](JobJournal &j, const JournalState &st) -> Status {
        return recover_snapshot_delete(target_of(st), j, st, options);
    });
}

}  // namespace virtsnap::qemu_snapshot
