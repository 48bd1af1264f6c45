// snapshot_revert_job.cc - waiting for the QEMU jobs of revert and delete.

#include "qemu_snapshot/snapshot_revert_job.hh"

#include "util/log.hh"

#define LOG_MODULE "qemu_snapshot.job"

namespace virtsnap::qemu_snapshot {

using namespace std::chrono_literals;

namespace {

std::optional<std::string> job_error(qemu::Monitor &mon, const std::string &id) {
    auto jobs = mon.query_jobs();
    if (!jobs) return std::nullopt;
    for (const auto &j : *jobs)
        if (j.id == id) return j.error;
    return std::nullopt;
}

}  // namespace

Status wait_job_status(DomainControl &ctl, qemu::JobWatch &watch, const std::vector<std::string> &statuses,
                       std::chrono::milliseconds timeout, const std::string &what) {
    qemu::Monitor &mon = ctl.monitor();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool cancelled = false;
    std::vector<std::string> wanted = statuses;
    wanted.push_back("concluded");
    for (;;) {
        auto st = watch.wait_for(wanted, 200ms);
        if (st) {
            if (*st != "concluded") return ok();
            break;
        }
        if (st.error().code != VIR_ERR_OPERATION_TIMEOUT) return fail(std::move(st).error());
        if (std::chrono::steady_clock::now() > deadline)
            return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "job '" + watch.job_id() + "' timed out");
        if (!cancelled && ctl.abort_requested()) {
            VS_INFO("cancelling job %s on request", watch.job_id().c_str());
            (void)mon.job_cancel(watch.job_id());
            cancelled = true;
        }
    }
    // Concluded before reaching a wanted status: it failed or was cancelled.
    auto err = job_error(mon, watch.job_id());
    (void)mon.job_dismiss(watch.job_id());
    if (cancelled) return fail(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "snapshot job: canceled by client");
    return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, what + ": " + err.value_or("job ended unexpectedly"));
}

Result<std::optional<std::string>> await_snapshot_job(DomainControl &ctl, qemu::JobWatch &watch,
                                                     std::chrono::milliseconds timeout) {
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
            (void)mon.job_cancel(watch.job_id());
            cancelled = true;
        }
    }
    auto err = job_error(mon, watch.job_id());
    if (cancelled) {
        (void)mon.job_dismiss(watch.job_id());
        return fail(VIR_ERR_OPERATION_ABORTED, VIR_FROM_QEMU, "snapshot job: canceled by client");
    }
    return err;
}

Status run_snapshot_job(DomainControl &ctl, qemu::JobWatch &watch, std::chrono::milliseconds timeout,
                        const std::string &what) {
    auto err = TRY(await_snapshot_job(ctl, watch, timeout));
    TRY(ctl.monitor().job_dismiss(watch.job_id()));
    if (err) return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, what + ": " + *err);
    return ok();
}

}  // namespace virtsnap::qemu_snapshot
