// memory_migration.cc - outgoing QMP migration to a file descriptor, with
// progress, cancellation and restoration of QEMU's migration settings.

#include "qemu/memory_migration.hh"

#define LOG_MODULE "qemu.migration"
#include "util/log.hh"
#include "util/raii.hh"

#include <libvirt/libvirt.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <condition_variable>
#include <cstdint>
#include <limits>
#include <set>

namespace virtsnap::qemu {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr virErrorDomain kDomain = VIR_FROM_QEMU;
// libvirt's QEMU_DOMAIN_MIG_BANDWIDTH_MAX in bytes/s: the largest MiB/s value
// that still fits an int64 once multiplied out.
uint64_t non_negative(int64_t v) { return v > 0 ? uint64_t(v) : 0; }

bool finished(const std::string &status) {
    return status == "completed" || status == "failed" || status == "cancelled";
}

}  // namespace

MigrationProgress migration_progress(const MigrationInfo &info, Clock::time_point started) {
    MigrationProgress p;
    p.status = info.status;
    if (info.ram) {
        p.total = non_negative(info.ram->total);
        p.processed = non_negative(info.ram->transferred);
        p.remaining = non_negative(info.ram->remaining);
    }
    p.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    p.downtime_ms = info.downtime;
    p.setup_time_ms = info.setup_time;
    return p;
}

MigrationEventWaker::MigrationEventWaker(Monitor &mon) : mon_(mon) {
    sub_ = mon_.subscribe("MIGRATION", [this](const QmpEvent &) {
        {
            std::lock_guard lk(mu_);
            ++seq_;
        }
        cv_.notify_all();
    });
}

MigrationEventWaker::~MigrationEventWaker() { mon_.unsubscribe(sub_); }

void MigrationEventWaker::wait(milliseconds max) {
    std::unique_lock lk(mu_);
    uint64_t seen = seq_;
    cv_.wait_for(lk, max, [&] { return seq_ != seen; });
}

std::optional<std::string> wait_for_migration_end(Monitor &mon, milliseconds timeout) {
    static const std::set<std::string> ended = {"completed", "failed", "cancelled", "none"};
    MigrationEventWaker events(mon);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto info = mon.query_migrate();
        if (!info) return std::string();
        if (ended.count(info->status)) return info->status;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        events.wait(milliseconds(100));
    }
}

// ---- MigrationTracker ----

void MigrationTracker::update(const MigrationProgress &p) {
    std::lock_guard lk(mu_);
    progress_ = p;
}

MigrationProgress MigrationTracker::get() const {
    std::lock_guard lk(mu_);
    return progress_;
}

JobStats MigrationTracker::stats() const { return make_stats(VIR_DOMAIN_JOB_UNBOUNDED); }

JobStats MigrationTracker::final_stats(int final_type) const { return make_stats(final_type); }

JobStats MigrationTracker::make_stats(int type) const {
    MigrationProgress p;
    Clock::time_point started;
    {
        std::lock_guard lk(mu_);
        p = progress_;
        started = started_;
    }
    auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
    bool done = type == VIR_DOMAIN_JOB_COMPLETED;
    uint64_t remaining = done ? 0 : p.remaining;
    uint64_t processed = p.processed;
    JobStats s;
    s.type = type;
    s.params.push_back({VIR_DOMAIN_JOB_OPERATION, int32_t(operation_)});
    s.params.push_back({VIR_DOMAIN_JOB_TIME_ELAPSED, uint64_t(elapsed.count())});
    s.params.push_back({VIR_DOMAIN_JOB_DATA_TOTAL, p.total});
    s.params.push_back({VIR_DOMAIN_JOB_DATA_PROCESSED, processed});
    s.params.push_back({VIR_DOMAIN_JOB_DATA_REMAINING, remaining});
    s.params.push_back({VIR_DOMAIN_JOB_MEMORY_TOTAL, p.total});
    s.params.push_back({VIR_DOMAIN_JOB_MEMORY_PROCESSED, processed});
    s.params.push_back({VIR_DOMAIN_JOB_MEMORY_REMAINING, remaining});
    if (elapsed.count() > 0)
        s.params.push_back({VIR_DOMAIN_JOB_MEMORY_BPS, uint64_t(processed * 1000 / uint64_t(elapsed.count()))});
    if (done && p.downtime_ms) s.params.push_back({VIR_DOMAIN_JOB_DOWNTIME, non_negative(*p.downtime_ms)});
    if (done && p.setup_time_ms) s.params.push_back({VIR_DOMAIN_JOB_SETUP_TIME, non_negative(*p.setup_time_ms)});
    return s;
}

// ---- outgoing migration ----

Result<MigrationProgress> migrate_memory_to_fd(Monitor &monitor, int fd, const MemoryMigrationOptions &options) {
    const auto started = Clock::now();

    // What QEMU can do, and what to put back afterwards.
    auto current_caps = TRY(monitor.query_migrate_capabilities());
    std::set<std::string> supported;
    std::vector<MigrationCapability> restore_caps, set_caps;
    for (const auto &c : current_caps) supported.insert(c.capability);
    auto want = [&](const std::string &name) {
        for (const auto &c : current_caps) {
            if (c.capability != name) continue;
            if (!c.state) {
                set_caps.push_back({name, true});
                restore_caps.push_back({name, false});
            }
            return;
        }
    };
    for (const auto &name : options.capabilities) {
        if (!supported.count(name))
            return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDomain,
                        "QEMU does not support migration capability '" + name + "'");
        want(name);
    }
    // MIGRATION events are only sent with the 'events' capability.
    if (supported.count("events")) want("events");

    std::optional<int64_t> old_bandwidth;
    if (options.unlimited_bandwidth) {
        old_bandwidth = TRY(monitor.query_migrate_parameters()).max_bandwidth;
    }

    // Undo in reverse order of the changes, keeping the first error.
    bool caps_set = false, bandwidth_set = false;
    auto restore = [&] {
        if (bandwidth_set && old_bandwidth) {
            Status st = monitor.migrate_set_parameters(QDict{{"max-bandwidth", QValue(*old_bandwidth)}});
            if (!st) VS_WARN("cannot restore migration bandwidth: %s", st.error().message().c_str());
        }
        if (caps_set && !restore_caps.empty()) {
            Status st = monitor.migrate_set_capabilities(restore_caps);
            if (!st) VS_WARN("cannot restore migration capabilities: %s", st.error().message().c_str());
        }
    };
    ScopeExit undo(restore);

    if (!set_caps.empty()) {
        TRY(monitor.migrate_set_capabilities(set_caps));
        caps_set = true;
    }
    if (options.unlimited_bandwidth) {
        TRY(monitor.migrate_set_parameters(QDict{{"max-bandwidth", QValue(kMigrationUnlimitedBandwidth)}}));
        bandwidth_set = true;
    }

    struct stat st_fd;
    bool writeback = ::fstat(fd, &st_fd) == 0 && S_ISREG(st_fd.st_mode);
    MigrationEventWaker waker(monitor);
    TRY(monitor.migrate_to_fd(fd));
    VS_DEBUG("migration to fd %d started", fd);

    bool cancel_sent = false;
    bool timed_out = false;
    Clock::time_point cancel_deadline;
    MigrationProgress last;
    for (;;) {
        auto info = monitor.query_migrate();
        if (!info) {
            // QEMU is gone or not answering: nothing left to cancel reliably.
            return fail(std::move(info).error());
        }
        last = migration_progress(*info, started);
        if (options.tracker) options.tracker->update(last);
        if (finished(info->status)) {
            if (info->status == "completed") {
                VS_DEBUG("migration completed: %llu bytes in %lld ms", (unsigned long long)last.processed,
                         (long long)last.elapsed.count());
                undo.release();
                restore();
                return last;
            }
            if (info->status == "cancelled" || (cancel_sent && !timed_out)) {
                if (timed_out)
                    return fail(VIR_ERR_OPERATION_TIMEOUT, kDomain, options.job_name + ": timed out");
                return fail(VIR_ERR_OPERATION_ABORTED, kDomain, options.job_name + ": canceled by client");
            }
            if (timed_out) return fail(VIR_ERR_OPERATION_TIMEOUT, kDomain, options.job_name + ": timed out");
            return fail(VIR_ERR_OPERATION_FAILED, kDomain,
                        options.job_name + ": " + info->error_desc.value_or("unexpectedly failed"));
        }
        if (!cancel_sent) {
            bool abort = options.abort_requested && options.abort_requested();
            if (!abort && Clock::now() - started > options.timeout) {
                abort = true;
                timed_out = true;
            }
            if (abort) {
                VS_INFO("cancelling migration (%s)", timed_out ? "timeout" : "abort requested");
                Status st = monitor.migrate_cancel();
                if (!st) return fail(std::move(st).error());
                cancel_sent = true;
                cancel_deadline = Clock::now() + std::chrono::seconds(60);
            }
        } else if (Clock::now() > cancel_deadline) {
            return fail(VIR_ERR_OPERATION_TIMEOUT, kDomain, options.job_name + ": migration did not stop after cancel");
        }
        // Start writeback of what QEMU wrote so far: the file is flushed
        // before the image counts as complete (SaveImageWriter::finalize),
        // and a flush begun now overlaps the stream instead of following it
        // (about 10 % faster on a paused guest, docs/performance.md).
        if (writeback) (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        waker.wait(options.poll_interval);
    }
}

}  // namespace virtsnap::qemu
