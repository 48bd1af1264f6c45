// domain_job.hh - the per-domain job lock: one job that changes a domain at a
// time, while queries keep working.
//
// libvirt serialises state-changing APIs per domain with a "job"; a second
// caller waits up to 30 s and then fails with VIR_ERR_OPERATION_TIMEOUT
// "cannot acquire state change lock (held by monitor=<api>)". Queries never
// take the job, so domjobinfo, dumpxml and friends answer during a snapshot.
// An async job (snapshot, save) can also be aborted: abort() sets a flag the
// running state machine polls at its safe points.
#pragma once

#include "util/result.hh"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace virtsnap::qemu {

// libvirt's virDomainJobOperation values, reported by domjobinfo.
enum class JobOperation {
    Unknown = 0, Start = 1, Save = 2, Restore = 3, MigrationIn = 4, MigrationOut = 5,
    SnapshotCreate = 6, SnapshotRevert = 7, Dump = 8, Backup = 9, SnapshotDelete = 10,
};

// Job statistics as virDomainGetJobStats reports them: a virDomainJobType and
// typed parameters named by libvirt's VIR_DOMAIN_JOB_* field names.
struct JobStatValue {
    std::string field;
    std::variant<int32_t, uint32_t, int64_t, uint64_t, double, bool, std::string> value;
};
struct JobStats {
    int type = 0;  // virDomainJobType: NONE 0, BOUNDED 1, UNBOUNDED 2, COMPLETED 3, FAILED 4, CANCELLED 5
    std::vector<JobStatValue> params;
};

class DomainJob {
public:
    class Guard;

    // Takes the job for `api` (the libvirt API name, for the busy message).
    [[nodiscard]] Result<Guard> begin(std::string api, JobOperation op,
                                      std::chrono::milliseconds wait = std::chrono::seconds(30));

    // The running job, if any (for domjobinfo).
    std::optional<JobOperation> current() const;
    std::chrono::steady_clock::time_point started() const;
    // Requests that the running job stop at its next safe point; false if none runs.
    bool request_abort();
    bool abort_requested() const;

    // The running job publishes live statistics (domjobinfo) through a provider
    // it installs for its duration; progress() is empty when none is installed.
    void set_progress_provider(std::function<JobStats()> provider);
    std::optional<JobStats> progress() const;

private:
    void end();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool busy_ = false;
    bool abort_ = false;
    std::string holder_;
    JobOperation op_ = JobOperation::Unknown;
    std::chrono::steady_clock::time_point started_;
    std::function<JobStats()> progress_;
};

// Holds the job until destroyed.
class DomainJob::Guard {
public:
    Guard(Guard &&o) noexcept : job_(o.job_) { o.job_ = nullptr; }
    Guard &operator=(Guard &&) = delete;
    Guard(const Guard &) = delete;
    ~Guard() { if (job_) job_->end(); }

private:
    friend class DomainJob;
    explicit Guard(DomainJob *job) : job_(job) {}
    DomainJob *job_;
};

}  // namespace virtsnap::qemu
