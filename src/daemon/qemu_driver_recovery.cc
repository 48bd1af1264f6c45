// qemu_driver_recovery.cc - at start-up, after the running QEMUs are
// re-attached: every job journal left by a killed daemon is handed, with its
// domain (definitions, QEMU process, snapshots), to the recovery handlers of
// src/qemu_snapshot/job_recovery.hh, which finish or roll back the job.

#include "daemon/qemu_driver.hh"

#include "qemu/agent.hh"
#include "qemu_snapshot/job_recovery.hh"
#include "util/file.hh"
#include "util/job_journal.hh"
#include "util/log.hh"

#include <libvirt/libvirt.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <thread>

#define LOG_MODULE "daemon.recovery"

namespace virtsnap::daemon {

namespace {

// A QEMU whose start a killed daemon had not finished has a pidfile but no
// status file, so nothing re-attached it; it holds the domain's images. It
// never ran the guest (-S, cont comes after the status file).
Status discard_unattached_qemu(const std::string &pidfile) {
    auto text = file::read(pidfile, 64);
    if (!text) return ok();
    pid_t pid = pid_t(std::atoi(text->c_str()));
    if (pid <= 1) return ok();
    // Only the QEMU that wrote this pidfile: its command line names it.
    auto cmdline = file::read("/proc/" + std::to_string(pid) + "/cmdline", 1 << 20);
    if (!cmdline || cmdline->find(pidfile) == std::string::npos) return ok();
    VS_WARN("recovery: killing QEMU %d, started by an interrupted revert", int(pid));
    if (::kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot kill QEMU " + std::to_string(pid)));
    for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)file::remove(pidfile, VIR_FROM_QEMU);
    return ok();
}

}  // namespace

Status QemuDriver::recover_jobs() {
    auto scan = TRY(JobJournal::scan(layout_.journal_dir()));
    for (const auto &[path, err] : scan.damaged)
        VS_WARN("job journal %s is damaged and kept for inspection: %s", path.c_str(), err.message().c_str());

    // The domain as recovery sees it (a local class: it uses the driver's private helpers).
    struct Target : qemu_snapshot::RecoveryTarget {
        QemuDriver &drv;
        std::shared_ptr<qemu::DomainObj> dom;
        std::shared_ptr<conf::SnapshotList> list;
        bool halted = false;

        Target(QemuDriver &d, std::shared_ptr<qemu::DomainObj> o) : drv(d), dom(std::move(o)) {}
        qemu::DomainProcess *process() {
            if (!dom) return nullptr;
            std::lock_guard lock(dom->mu);
            return dom->process && dom->process->active() ? dom->process.get() : nullptr;
        }
        qemu::Monitor *monitor() override {
            auto *p = process();
            return p ? &p->monitor() : nullptr;
        }
        std::shared_ptr<const conf::DomainDef> live_def() override {
            if (!dom) return nullptr;
            std::lock_guard lock(dom->mu);
            return dom->live;
        }
        std::vector<qemu::DiskNodeNames> block_graph() override {
            auto *p = process();
            return p ? p->block_graph() : std::vector<qemu::DiskNodeNames>{};
        }
        unsigned next_node_index() override {
            auto *p = process();
            return p ? p->status().next_node_index : 1;
        }
        Status set_live(std::shared_ptr<const conf::DomainDef> def, std::vector<qemu::DiskNodeNames> graph,
                        unsigned next) override {
            auto *p = process();
            if (!p) return ok();
            TRY(p->set_block_graph(std::move(graph), next));
            TRY(p->set_live_def(def));
            std::lock_guard lock(dom->mu);
            dom->live = std::move(def);
            return ok();
        }
        std::shared_ptr<const conf::DomainDef> persistent_def() override {
            if (!dom) return nullptr;
            std::lock_guard lock(dom->mu);
            return dom->persistent ? dom->def : nullptr;
        }
        Status save_persistent(std::shared_ptr<const conf::DomainDef> def) override {
            TRY(drv.save_config(*def));
            std::lock_guard lock(dom->mu);
            dom->def = std::move(def);
            return ok();
        }
        conf::SnapshotList *snapshots() override {
            if (!dom) return nullptr;
            if (!list) {
                auto l = drv.snapshots_of(dom);
                if (!l) {
                    VS_WARN("cannot load snapshots: %s", l.error().message().c_str());
                    return nullptr;
                }
                list = *l;
            }
            return list.get();
        }
        Status resume_as(int reason) {
            auto *p = process();
            if (!p) return ok();
            // The status file may still say running while QEMU is paused.
            if (p->state().first == VIR_DOMAIN_RUNNING) return p->monitor().cont();
            return p->resume(reason);
        }
        Status resume() override { return resume_as(VIR_DOMAIN_RUNNING_UNPAUSED); }
        Status resume_from_snapshot() override { return resume_as(VIR_DOMAIN_RUNNING_FROM_SNAPSHOT); }
        Status start(const conf::DomainDef &def, bool paused, const std::string &memory_file) override {
            if (!dom) return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain for the journal");
            drv.release_stopped_process(dom);
            return drv.start_from_snapshot(dom, def, paused, memory_file);
        }
        Status discard_unattached() override {
            if (!dom || process()) return ok();
            std::string name;
            {
                std::lock_guard lock(dom->mu);
                name = dom->def->name;
            }
            auto paths = TRY(qemu::ProcessPaths::for_domain(drv.layout_, name));
            return discard_unattached_qemu(paths.pidfile);
        }
        void note_failed_revert() override {
            if (dom) drv.emit_lifecycle(dom, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR);
        }
        Status halt() override {
            auto *p = process();
            if (!p) return ok();
            TRY(p->stop(VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT, VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT));
            halted = true;
            return ok();
        }
        Status thaw() override {
            auto *p = process();
            qemu::Agent *a = p ? p->agent() : nullptr;
            if (!a || !a->connected()) return ok();  // a guest that reboots thaws anyway
            TRY(a->fsfreeze_thaw());
            return ok();
        }
    };

    unsigned recovered = 0, failed = 0;
    for (const auto &st : scan.journals) {
        std::shared_ptr<qemu::DomainObj> dom;
        if (st.began)
            if (auto uuid = Uuid::parse(st.header.domain_uuid)) dom = domains_.find_by_uuid(*uuid);
        std::optional<qemu::DomainJob::Guard> job;
        if (dom) {
            auto g = dom->job.begin("jobRecovery", qemu::JobOperation::Unknown);
            if (!g) {
                VS_WARN("cannot recover %s: %s", st.path.c_str(), g.error().message().c_str());
                ++failed;
                continue;
            }
            job.emplace(std::move(*g));
        }
        Target target(*this, dom);
        JournalRecovery rec;
        qemu_snapshot::add_recovery_handlers(rec, [&target](const JournalState &) -> qemu_snapshot::RecoveryTarget & {
            return target;
        });
        if (auto r = rec.recover(st); !r) {
            VS_WARN("recovery of job journal %s failed, kept for the next start: %s", st.path.c_str(),
                    r.error().message().c_str());
            ++failed;
        } else {
            ++recovered;
        }
        if (auto *p = target.process()) (void)p->set_job(std::nullopt);
        if (dom && target.halted) release_stopped_process(dom);
    }
    if (recovered || failed) VS_INFO("job recovery: %u journal(s) settled, %u failed", recovered, failed);
    return ok();
}

}  // namespace virtsnap::daemon
