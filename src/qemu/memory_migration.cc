// memory_migration.cc - outgoing QMP migration to a file descriptor, with
// progress, cancellation and restoration of QEMU's migration settings.

#include "qemu/memory_migration.hh"

#include "qemu/memory_relay.hh"
#include "qemu/migration_capability_change.hh"

#define LOG_MODULE "qemu.migration"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <libvirt/libvirt.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

namespace {

// The capabilities a sparse image needs, among those QEMU has.
Status mapped_ram_supported(const std::set<std::string> &supported, const MappedRam &layout) {
    std::vector<std::string> needed{"mapped-ram"};
    if (layout.channels > 0) needed.push_back("multifd");
    for (const auto &name : needed)
        if (!supported.count(name))
            return fail(VIR_ERR_OPERATION_UNSUPPORTED, kDomain,
                        "the sparse memory image format needs QEMU's '" + name +
                            "' migration capability, which this QEMU lacks");
    return ok();
}

}  // namespace

std::optional<uint64_t> page_cache_writeback_threshold() {
    auto read_number = [](const char *path) -> std::optional<uint64_t> {
        auto text = file::read(path, 64, kDomain);
        if (!text) return std::nullopt;
        char *end = nullptr;
        unsigned long long v = std::strtoull(text->c_str(), &end, 10);
        if (end == text->c_str()) return std::nullopt;
        return uint64_t(v);
    };
    if (auto bytes = read_number("/proc/sys/vm/dirty_background_bytes"); bytes && *bytes > 0) return bytes;
    auto ratio = read_number("/proc/sys/vm/dirty_background_ratio");
    auto meminfo = file::read("/proc/meminfo", 1 << 16, kDomain);
    if (!ratio || !meminfo) return std::nullopt;
    auto at = meminfo->find("MemAvailable:");
    if (at == std::string::npos) return std::nullopt;
    unsigned long long kib = std::strtoull(meminfo->c_str() + at + 13, nullptr, 10);
    return uint64_t(kib) * 1024 / 100 * *ratio;
}

std::optional<MappedRam> incoming_layout(const SaveImageHeader &header, unsigned channels) {
    if (header.version != 2 || header.compressed != SaveImageHeader::kSparse) return std::nullopt;
    return MappedRam{channels};
}

UniqueFd reopen_for_fdset(int fd, int flags) {
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    return UniqueFd(::open(self.c_str(), flags | O_CLOEXEC));
}

std::string fdset_file_uri(int64_t fdset, uint64_t offset) {
    char uri[96];
    std::snprintf(uri, sizeof uri, "file:/dev/fdset/%lld,offset=%#llx", (long long)fdset, (unsigned long long)offset);
    return uri;
}

Status check_mapped_ram(Monitor &monitor, const MappedRam &layout) {
    return mapped_ram_supported(TRY(known_migration_capabilities(monitor)), layout);
}

Result<MigrationProgress> migrate_memory_to_fd(Monitor &monitor, int fd, const MemoryMigrationOptions &options) {
    const auto started = Clock::now();
    const std::optional<MappedRam> &mapped = options.mapped_ram;

    // What QEMU can do, and what to put back afterwards.
    auto caps = TRY(MigrationCapabilityChange::query(monitor));
    for (const auto &name : options.capabilities) TRY(caps.require(name));
    if (mapped) TRY(mapped_ram_supported(caps.supported(), *mapped));
    // The plain stream cannot go with mapped-ram or multifd (a sparse restore
    // leaves them as it found them, but another client of QEMU may not).
    caps.want("mapped-ram", mapped.has_value());
    caps.want("multifd", mapped && mapped->channels > 0);
    // MIGRATION events are only sent with the 'events' capability.
    caps.want("events", true);

    // Parameters: put back exactly what was changed.
    QDict set_params, restore_params;
    bool old_direct_io = false;
    if (options.unlimited_bandwidth || mapped) {
        MigrationParameters old = TRY(monitor.query_migrate_parameters());
        old_direct_io = old.direct_io.value_or(false);
        if (options.unlimited_bandwidth) {
            set_params.emplace_back("max-bandwidth", kMigrationUnlimitedBandwidth);
            if (old.max_bandwidth) restore_params.emplace_back("max-bandwidth", *old.max_bandwidth);
        }
        if (mapped && mapped->channels > 0) {
            set_params.emplace_back("multifd-channels", int64_t(mapped->channels));
            if (old.multifd_channels) restore_params.emplace_back("multifd-channels", *old.multifd_channels);
        }
    }

    // A sparse image: the file joins an fdset, write-only, and with O_DIRECT
    // when the file system takes it (then QEMU's multifd channels bypass the
    // page cache).
    UniqueFd fdset_plain, fdset_direct;
    if (mapped) {
        fdset_plain = reopen_for_fdset(fd, O_WRONLY);
        if (!fdset_plain.valid())
            return fail(make_system_error(kDomain, errno, "cannot reopen the memory image for QEMU"));
        if (mapped->channels > 0) fdset_direct = reopen_for_fdset(fd, O_WRONLY | O_DIRECT);
        if (fdset_direct.valid()) {
            set_params.emplace_back("direct-io", true);
            restore_params.emplace_back("direct-io", old_direct_io);
        }
    }

    // Undo in reverse order of the changes, keeping the first error.
    bool params_set = false;
    std::optional<int64_t> fdset;
    auto restore = [&] {
        if (fdset) {
            Status st = monitor.remove_fd(*fdset);
            if (!st) VS_WARN("cannot remove the memory image's fdset: %s", st.error().message().c_str());
        }
        if (params_set && !restore_params.empty()) {
            Status st = monitor.migrate_set_parameters(restore_params);
            if (!st) VS_WARN("cannot restore migration parameters: %s", st.error().message().c_str());
        }
        caps.restore(monitor);
    };
    ScopeExit undo(restore);

    TRY(caps.apply(monitor));
    if (!set_params.empty()) {
        TRY(monitor.migrate_set_parameters(set_params));
        params_set = true;
    }

    struct stat st_fd;
    const bool regular = ::fstat(fd, &st_fd) == 0 && S_ISREG(st_fd.st_mode);
    const bool relayed = options.direct_io && !mapped && regular;
    // Nothing to start writeback of when QEMU writes with direct-io or the
    // relay does with O_DIRECT.
    bool writeback = regular && !fdset_direct.valid() && !relayed;
    std::optional<MemoryRelay> relay;
    MigrationEventWaker waker(monitor);
    if (mapped) {
        off_t offset = ::lseek(fd, 0, SEEK_CUR);
        if (offset < 0) return fail(make_system_error(kDomain, errno, "cannot find the memory image's stream offset"));
        AddFdInfo added = TRY(monitor.add_fd(fdset_plain.get(), std::nullopt, std::string("memory image")));
        fdset = added.fdset_id;
        if (fdset_direct.valid()) TRY(monitor.add_fd(fdset_direct.get(), fdset, std::string("memory image, direct")));
        std::string uri = fdset_file_uri(*fdset, uint64_t(offset));
        TRY(monitor.migrate(uri));
        VS_DEBUG("migration to %s started (mapped-ram, %u channels%s)", uri.c_str(), mapped->channels,
                 fdset_direct.valid() ? ", direct-io" : "");
    } else if (relayed) {
        off_t offset = ::lseek(fd, 0, SEEK_CUR);
        if (offset < 0) return fail(make_system_error(kDomain, errno, "cannot find the memory image's stream offset"));
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) < 0)
            return fail(make_system_error(kDomain, errno, "cannot create a pipe for the memory image"));
        UniqueFd read_end(ends[0]), write_end(ends[1]);
        // QEMU writes 32 KiB at a time: a 1 MiB pipe keeps it from waiting
        // on every read of the relay.
        (void)::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20);
        relay = TRY(MemoryRelay::start(std::move(read_end), fd, uint64_t(offset), 0, true));
        TRY(relay->open_gate());
        TRY(monitor.migrate_to_fd(write_end.get()));
        // write_end closes here: QEMU holds the only writer now, and the relay
        // sees the end of the stream when QEMU closes it.
        VS_INFO("memory image streamed through virtsnap-relay %d (O_DIRECT where the file system takes it)", int(relay->pid()));
    } else {
        TRY(monitor.migrate_to_fd(fd));
        VS_DEBUG("migration to fd %d started", fd);
    }

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
                // QEMU is done once the relay wrote what the pipe and its
                // buffers still hold (a few MiB).
                if (relay) TRY(relay->finish(std::chrono::minutes(10)));
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
