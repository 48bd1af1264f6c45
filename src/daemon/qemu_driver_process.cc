// qemu_driver_process.cc - QEMU driver APIs that start, stop and control a
// domain's QEMU, and the re-attach of running QEMUs at daemon start-up.
//
// A DomainProcess reports state changes through a handler that runs on the
// monitor or process thread; the handler only updates the DomainObj and
// publishes the event. Tearing a stopped process down (which joins its
// threads) happens on the API thread that stopped it, or - for a guest
// shutdown or a crash nobody asked for - on a short-lived cleanup thread that
// takes the domain job first, so it never races an API on the same domain.

#include "daemon/qemu_driver.hh"

#include "daemon/check_flags.hh"
#include "qemu/domain_process.hh"
#include "qemu/host_probe.hh"
#include "qemu/process_paths.hh"
#include "util/file.hh"
#include "util/log.hh"

#include <thread>

#define LOG_MODULE "daemon.process"

namespace virtsnap::daemon {

namespace {

Error not_running() {
    return make_error(VIR_ERR_OPERATION_INVALID, VIR_FROM_DOMAIN, "domain is not running");
}

}  // namespace

qemu::HostProbe QemuDriver::host_probe() const {
    static const qemu::HostProbe probe = qemu::probe_host();
    qemu::HostProbe p = probe;
    p.hugetlbfs = hugetlbfs_;
    return p;
}

qemu::DomainProcess::EventHandler QemuDriver::process_handler(const std::shared_ptr<qemu::DomainObj> &dom) {
    std::weak_ptr<qemu::DomainObj> weak = dom;
    return [this, weak](qemu::DomainProcess &, const qemu::DomainEvent &ev) {
        auto d = weak.lock();
        if (!d) return;
        bool stopped = ev.type == qemu::DomainEvent::Type::Lifecycle && ev.event == VIR_DOMAIN_EVENT_STOPPED;
        {
            std::lock_guard lock(d->mu);
            d->state = ev.state;
            d->reason = ev.reason;
            if (stopped) {
                d->live.reset();
                d->id = -1;
            }
        }
        if (stopped) domains_.clear_id(d);
        if (ev.type == qemu::DomainEvent::Type::Lifecycle) emit_lifecycle(d, ev.event, ev.detail);
        if (stopped) schedule_cleanup(d);
    };
}

void QemuDriver::schedule_cleanup(const std::shared_ptr<qemu::DomainObj> &dom) {
    // Runs after whatever API may be stopping the domain has released the job.
    std::thread([this, dom] {
        auto job = dom->job.begin("processCleanup", qemu::JobOperation::Unknown, std::chrono::minutes(10));
        if (!job) return;
        release_stopped_process(dom);
    }).detach();
}

void QemuDriver::release_stopped_process(const std::shared_ptr<qemu::DomainObj> &dom) {
    std::unique_ptr<qemu::DomainProcess> gone;
    bool transient_gone = false;
    {
        std::lock_guard lock(dom->mu);
        if (dom->process && !dom->process->active()) gone = std::move(dom->process);
        transient_gone = !dom->active() && !dom->persistent;
    }
    gone.reset();
    if (transient_gone) domains_.remove(dom->uuid);
}

Status QemuDriver::start_domain(const std::shared_ptr<qemu::DomainObj> &dom, uint32_t flags) {
    std::shared_ptr<conf::DomainDef> live;
    {
        std::lock_guard lock(dom->mu);
        if (dom->active())
            return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "domain is already running");
        live = dom->def->clone();
    }
    auto paths = TRY(qemu::ProcessPaths::for_domain(layout_, live->name));
    int id = domains_.allocate_id();
    live->id = id;

    qemu::DomainProcess::StartOptions opts;
    opts.paused = flags & VIR_DOMAIN_START_PAUSED;
    opts.host = host_probe();
    auto process = TRY(qemu::DomainProcess::start(*live, paths, opts, process_handler(dom)));
    auto [state, reason] = process->state();
    {
        std::lock_guard lock(dom->mu);
        dom->live = process->live_def() ? process->live_def() : live;
        dom->id = id;
        dom->state = state;
        dom->reason = reason;
        dom->process = std::move(process);
    }
    domains_.set_id(dom, id);
    return ok();
}

Result<rpc::DomainRef> QemuDriver::domain_create(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags,
                    VIR_DOMAIN_START_PAUSED | VIR_DOMAIN_START_AUTODESTROY | VIR_DOMAIN_START_BYPASS_CACHE |
                        VIR_DOMAIN_START_FORCE_BOOT | VIR_DOMAIN_START_RESET_NVRAM,
                    "qemuDomainCreateWithFlags"));
    auto dom = TRY(find(ref));
    auto job = TRY(dom->job.begin("remoteDispatchDomainCreateWithFlags", qemu::JobOperation::Start));
    if (!TRY(start_from_managed_save(dom, flags))) TRY(start_domain(dom, flags));  // [save]
    std::lock_guard lock(dom->mu);
    return ref_of(*dom);
}

// Runs `op` on the running process of `ref` under the domain job.
template <typename Op>
Status QemuDriver::with_process(const rpc::DomainRef &ref, const char *api, Op &&op) {
    auto dom = TRY(find(ref));
    auto job = TRY(dom->job.begin(api, qemu::JobOperation::Unknown));
    qemu::DomainProcess *p;
    {
        std::lock_guard lock(dom->mu);
        p = dom->process.get();
        if (!p || !dom->active()) return fail(not_running());
    }
    TRY(op(*p));
    release_stopped_process(dom);
    return ok();
}

Status QemuDriver::domain_destroy(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_DESTROY_GRACEFUL, "qemuDomainDestroyFlags"));
    return with_process(ref, "remoteDispatchDomainDestroyFlags",
                        [&](qemu::DomainProcess &p) { return p.destroy(flags); });
}

Status QemuDriver::domain_shutdown(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN | VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
                    "qemuDomainShutdownFlags"));
    return with_process(ref, "remoteDispatchDomainShutdownFlags",
                        [&](qemu::DomainProcess &p) { return p.shutdown(flags); });
}

Status QemuDriver::domain_reboot(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_REBOOT_ACPI_POWER_BTN | VIR_DOMAIN_REBOOT_GUEST_AGENT,
                    "qemuDomainReboot"));
    return with_process(ref, "remoteDispatchDomainReboot",
                        [&](qemu::DomainProcess &p) { return p.reboot(flags); });
}

Status QemuDriver::domain_suspend(const rpc::Client &, const rpc::DomainRef &ref) {
    return with_process(ref, "remoteDispatchDomainSuspend", [&](qemu::DomainProcess &p) -> Status {
        auto [state, reason] = p.state();
        (void)reason;
        if (state == VIR_DOMAIN_PAUSED) return ok();  // libvirt: suspending a paused domain succeeds
        return p.suspend();
    });
}

Status QemuDriver::domain_resume(const rpc::Client &, const rpc::DomainRef &ref) {
    return with_process(ref, "remoteDispatchDomainResume", [&](qemu::DomainProcess &p) -> Status {
        auto [state, reason] = p.state();
        (void)reason;
        if (state == VIR_DOMAIN_RUNNING) return ok();
        return p.resume();
    });
}

Result<rpc::JobInfo> QemuDriver::domain_get_job_info(const rpc::Client &c, const rpc::DomainRef &ref) {
    auto stats = TRY(domain_get_job_stats(c, ref, 0));
    rpc::JobInfo info;
    info.type = stats.type;
    for (const auto &p : stats.params) {
        auto u = std::get_if<uint64_t>(&p.value);
        if (!u) continue;
        if (p.field == VIR_DOMAIN_JOB_TIME_ELAPSED) info.time_elapsed = *u;
        else if (p.field == VIR_DOMAIN_JOB_MEMORY_TOTAL) info.mem_total = info.data_total = *u;
        else if (p.field == VIR_DOMAIN_JOB_MEMORY_PROCESSED) info.mem_processed = info.data_processed = *u;
        else if (p.field == VIR_DOMAIN_JOB_MEMORY_REMAINING) info.mem_remaining = info.data_remaining = *u;
    }
    return info;
}

Result<rpc::JobStats> QemuDriver::domain_get_job_stats(const rpc::Client &, const rpc::DomainRef &ref,
                                                       uint32_t flags) {
    TRY(check_flags(flags, VIR_DOMAIN_JOB_STATS_COMPLETED | VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED,
                    "qemuDomainGetJobStats"));
    auto dom = TRY(find(ref));
    rpc::JobStats stats;
    auto convert = [](const qemu::JobStats &in) {
        rpc::JobStats out;
        out.type = in.type;
        for (const auto &p : in.params)
            out.params.push_back({p.field, std::visit([](const auto &v) { return rpc::TypedValue(v); }, p.value)});
        return out;
    };
    if (flags & VIR_DOMAIN_JOB_STATS_COMPLETED) {
        std::lock_guard lock(dom->mu);
        if (dom->completed_job) stats = convert(*dom->completed_job);
        if (!(flags & VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED)) dom->completed_job.reset();
        return stats;
    }
    auto op = dom->job.current();
    if (!op) return stats;  // VIR_DOMAIN_JOB_NONE
    if (auto progress = dom->job.progress()) return convert(*progress);
    stats.type = VIR_DOMAIN_JOB_UNBOUNDED;
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                         dom->job.started());
    stats.params.push_back({VIR_DOMAIN_JOB_OPERATION, int32_t(*op)});
    stats.params.push_back({VIR_DOMAIN_JOB_TIME_ELAPSED, uint64_t(elapsed.count())});
    return stats;
}

Status QemuDriver::domain_abort_job(const rpc::Client &, const rpc::DomainRef &ref, uint32_t flags) {
    TRY(check_flags(flags, 0, "qemuDomainAbortJobFlags"));
    auto dom = TRY(find(ref));
    {
        std::lock_guard lock(dom->mu);
        if (!dom->active()) return fail(not_running());
    }
    if (!dom->job.request_abort())
        return fail(VIR_ERR_OPERATION_INVALID, VIR_FROM_QEMU, "no job is active on the domain");
    return ok();
}

Status QemuDriver::reattach_all() {
    auto files = TRY(file::list_dir(layout_.runtime_dir()));
    for (const auto &f : files) {
        if (f.size() <= 4 || f.compare(f.size() - 4, 4, ".xml") != 0) continue;
        std::string name = f.substr(0, f.size() - 4);
        auto paths = qemu::ProcessPaths::for_domain(layout_, name);
        if (!paths) continue;
        auto existing = domains_.find_by_name(name);
        std::shared_ptr<qemu::DomainObj> dom = existing;
        // The handler needs the DomainObj; a transient domain gets one from the status.
        auto status = qemu::DomainStatus::load(paths->status_file);
        if (!status || !status->def) {
            VS_WARN("cannot read status file %s: %s", paths->status_file.c_str(),
                    status ? "no domain definition" : status.error().message().c_str());
            continue;
        }
        if (!dom) {
            dom = std::make_shared<qemu::DomainObj>(status->def, false);
            if (!domains_.add(dom)) continue;
        }
        auto att = qemu::DomainProcess::reattach(*paths, process_handler(dom));
        if (!att) {
            VS_WARN("cannot re-attach to %s: %s", name.c_str(), att.error().message().c_str());
            if (!dom->persistent) domains_.remove(dom->uuid);
            continue;
        }
        if (!att->process) {
            VS_INFO("QEMU of domain %s is gone", name.c_str());
            std::lock_guard lock(dom->mu);
            dom->state = VIR_DOMAIN_SHUTOFF;
            dom->reason = att->shutoff_reason;
            if (!dom->persistent) {
                domains_.remove(dom->uuid);
            }
            continue;
        }
        auto [state, reason] = att->process->state();
        int id = att->status.def ? att->status.def->id : -1;
        if (id < 0) id = domains_.allocate_id();
        {
            std::lock_guard lock(dom->mu);
            dom->live = att->process->live_def();
            dom->id = id;
            dom->state = state;
            dom->reason = reason;
            dom->process = std::move(att->process);
        }
        domains_.set_id(dom, id);
        VS_INFO("re-attached to QEMU of domain %s", name.c_str());
    }
    return ok();
}

void QemuDriver::detach_all() {
    for (const auto &dom : domains_.list()) {
        std::unique_ptr<qemu::DomainProcess> p;
        {
            std::lock_guard lock(dom->mu);
            p = std::move(dom->process);
        }
        p.reset();  // closes monitor and agent; QEMU keeps running
    }
}

}  // namespace virtsnap::daemon
