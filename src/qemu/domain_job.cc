// domain_job.cc - per-domain job lock.

#include "qemu/domain_job.hh"

namespace virtsnap::qemu {

Result<DomainJob::Guard> DomainJob::begin(std::string api, JobOperation op, std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, wait, [this] { return !busy_; }))
        return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU,
                    "cannot acquire state change lock (held by monitor=" + holder_ + ")");
    busy_ = true;
    abort_ = false;
    holder_ = std::move(api);
    op_ = op;
    started_ = std::chrono::steady_clock::now();
    return Guard(this);
}

void DomainJob::end() {
    {
        std::lock_guard lock(mu_);
        busy_ = false;
        abort_ = false;
        holder_.clear();
        op_ = JobOperation::Unknown;
        progress_ = nullptr;
    }
    cv_.notify_one();
}

std::optional<JobOperation> DomainJob::current() const {
    std::lock_guard lock(mu_);
    if (!busy_) return std::nullopt;
    return op_;
}

std::chrono::steady_clock::time_point DomainJob::started() const {
    std::lock_guard lock(mu_);
    return started_;
}

bool DomainJob::request_abort() {
    std::lock_guard lock(mu_);
    if (!busy_) return false;
    abort_ = true;
    return true;
}

bool DomainJob::abort_requested() const {
    std::lock_guard lock(mu_);
    return abort_;
}

void DomainJob::set_progress_provider(std::function<JobStats()> provider) {
    std::lock_guard lock(mu_);
    progress_ = std::move(provider);
}

std::optional<JobStats> DomainJob::progress() const {
    std::function<JobStats()> p;
    {
        std::lock_guard lock(mu_);
        if (!busy_ || !progress_) return std::nullopt;
        p = progress_;
    }
    return p();
}

}  // namespace virtsnap::qemu
