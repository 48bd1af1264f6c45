// memory_migration.hh - a running QEMU's device and RAM state sent to a file
// descriptor through QMP migration: what save, managed save and memory
// snapshots are made of.
//
// migrate_memory_to_fd() drives one outgoing migration as libvirt's
// qemuMigrationSrcToFile does, with QEMU writing the file itself (no helper
// process or pipe in between):
//
//   query-migrate-capabilities, query-migrate-parameters   (what to restore)
//   migrate-set-capabilities   events + the caller's capabilities
//   migrate-set-parameters     max-bandwidth unlimited
//   getfd "migrate" + migrate "fd:migrate"
//     or, with direct_io, the same on a pipe read by virtsnap-relay, which
//     writes the image with O_DIRECT (memory_relay.hh)
//     or, for a sparse image (MappedRam): mapped-ram (+ multifd) on,
//     multifd-channels and direct-io set, add-fd of the file reopened
//     write-only (and once more with O_DIRECT), migrate
//     "file:/dev/fdset/N,offset=<the fd's offset>"; remove-fd at the end
//   wait: MIGRATION events wake the waiter, query-migrate gives the figures;
//         a regular file's writeback is started at each wake-up
//         (sync_file_range), so the caller's closing flush has only the tail;
//         an abort request sends migrate_cancel and waits for QEMU to stop
//   migrate-set-parameters / -capabilities back to what they were
//
// Capabilities are probed on the QEMU at hand (query-migrate-capabilities),
// never assumed from its version: a requested capability QEMU lacks fails
// up front with VIR_ERR_OPERATION_UNSUPPORTED.
//
// Errors are libvirt's (qemuMigrationJobCheckStatus): a failed migration is
// VIR_ERR_OPERATION_FAILED "<job>: <QEMU's error>", a cancelled one
// VIR_ERR_OPERATION_ABORTED "<job>: canceled by client", where <job> is e.g.
// "domain save job" or "snapshot job".
//
// The incoming side needs nothing here: DomainProcess::start with
// StartOptions::incoming_fd (an fd positioned at the stream, e.g. from
// open_save_image) runs migrate-incoming and waits for it.
#pragma once

#include "qemu/domain_job.hh"
#include "qemu/monitor.hh"
#include "qemu/save_image.hh"
#include "util/raii.hh"
#include "util/result.hh"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <condition_variable>
#include <limits>
#include <string>
#include <vector>

namespace virtsnap::qemu {

// A snapshot of the migration's figures (query-migrate).
struct MigrationProgress {
    std::string status;              // QEMU's MigrationStatus ("setup", "active", "completed" ...)
    uint64_t total = 0;              // guest RAM bytes
    uint64_t processed = 0;          // bytes transferred
    uint64_t remaining = 0;          // bytes still to send
    std::chrono::milliseconds elapsed{0};
    std::optional<int64_t> downtime_ms;
    std::optional<int64_t> setup_time_ms;
};

// Thread-safe holder of the latest figures: the migration updates it, the
// domain job's progress provider reads it for domjobinfo.
class MigrationTracker {
public:
    explicit MigrationTracker(JobOperation operation) : operation_(operation) {}

    void update(const MigrationProgress &p);
    MigrationProgress get() const;

    // virDomainGetJobStats figures: UNBOUNDED while running, `final_type`
    // (COMPLETED, FAILED, CANCELLED) for the stored last-job statistics.
    JobStats stats() const;
    JobStats final_stats(int final_type) const;

private:
    JobStats make_stats(int type) const;

    JobOperation operation_;
    mutable std::mutex mu_;
    MigrationProgress progress_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// The dirty page cache past which the kernel starts writing back in the
// background (vm.dirty_background_bytes, else vm.dirty_background_ratio of
// MemAvailable); nullopt when /proc does not tell. A memory image larger
// than this no longer fits the page cache unnoticed: its writes compete with
// writeback, then the kernel throttles them (docs/performance.md, "Memory
// written with O_DIRECT").
std::optional<uint64_t> page_cache_writeback_threshold();

// The mapped-ram layout of a sparse image (save_image.hh, format 6: libvirt
// 11's "sparse" save image format). QEMU writes each guest page at a fixed
// offset of the file, from `channels` multifd threads at once, with direct-io
// where the file system takes O_DIRECT (QEMU 9.0 and later). Measured on QEMU
// 10.0 (docs/performance.md, "mapped-ram and multifd"): mapped-ram alone is
// slower than the plain stream; with 2 channels and direct-io it writes at the
// disk's rate, no flush left, without the page cache's dirty-page throttling.
struct MappedRam {
    unsigned channels = 2;   // 0: QEMU's migration thread writes alone
};

// Whether this QEMU can write (and read) a sparse image: the mapped-ram
// capability, and multifd when `layout` asks for channels. Errors are
// VIR_ERR_OPERATION_UNSUPPORTED naming what is missing.
[[nodiscard]] Status check_mapped_ram(Monitor &monitor, const MappedRam &layout);

// How QEMU reads the stream of the image `header` describes: the mapped-ram
// layout through `channels` for a sparse image, nothing for the plain stream.
std::optional<MappedRam> incoming_layout(const SaveImageHeader &header, unsigned channels);

// The file behind `fd` opened once more through /proc with `flags` (same
// file, new open flags), for QEMU's fdsets: QEMU takes from an fdset the fd
// whose access mode matches how it opens the path, and direct-io needs an
// fd with O_DIRECT of its own (a dup would share the flags).
UniqueFd reopen_for_fdset(int fd, int flags);
// "file:/dev/fdset/<fdset>,offset=<hex>": QEMU's file transport on an fdset.
std::string fdset_file_uri(int64_t fdset, uint64_t offset);

struct MemoryMigrationOptions {
    // Names the job in errors, as libvirt's qemuMigrationJobName.
    std::string job_name = "domain save job";
    // Capabilities to switch on for this migration (e.g. "background-snapshot"),
    // switched back afterwards.
    std::vector<std::string> capabilities;
    // Set: the stream in the mapped-ram layout (the fd must be a regular file).
    // Unset: the plain stream, with mapped-ram and multifd switched off if a
    // restore left them on.
    std::optional<MappedRam> mapped_ram;
    // The plain stream into a regular file through virtsnap-relay, which
    // writes it with O_DIRECT where the file system takes it
    // (relay_direct_copy.hh); ignored for mapped_ram and other fds. The
    // call returns once the relay has written everything.
    bool direct_io = false;
    // migrate-set-parameters max-bandwidth to the largest value libvirt uses
    // (QEMU's default is 32 MiB/s), restored afterwards.
    bool unlimited_bandwidth = true;
    // Polled between checks; true requests migrate_cancel.
    std::function<bool()> abort_requested;
    // Receives the figures after every check (optional).
    MigrationTracker *tracker = nullptr;
    std::chrono::milliseconds poll_interval{100};
    // The whole migration; past it the migration is cancelled and fails.
    std::chrono::milliseconds timeout = std::chrono::hours(6);
};

// Migrates to `fd` (QEMU receives a duplicate and writes at the fd's current
// offset) and waits until QEMU reports completion. On every failure the
// migration is cancelled if still running and QEMU's migration settings are
// put back; the guest's run state is the caller's business.
[[nodiscard]] Result<MigrationProgress> migrate_memory_to_fd(Monitor &monitor, int fd,
                                                             const MemoryMigrationOptions &options);

// Pieces shared with other migration sequences (the instant snapshot's).
// max-bandwidth libvirt sets for "unlimited": the largest MiB multiple QEMU takes.
inline constexpr int64_t kMigrationUnlimitedBandwidth =
    (std::numeric_limits<int64_t>::max() / (1024 * 1024)) * (1024 * 1024);
// query-migrate figures as progress since `started`.
MigrationProgress migration_progress(const MigrationInfo &info, std::chrono::steady_clock::time_point started);
// Wakes a waiting thread on every MIGRATION event (subscribed for its lifetime).
class MigrationEventWaker {
public:
    explicit MigrationEventWaker(Monitor &mon);
    ~MigrationEventWaker();
    MigrationEventWaker(const MigrationEventWaker &) = delete;
    MigrationEventWaker &operator=(const MigrationEventWaker &) = delete;
    // Returns after the next event or `max`, whichever comes first.
    void wait(std::chrono::milliseconds max);

private:
    Monitor &mon_;
    Monitor::SubscriptionId sub_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    uint64_t seq_ = 0;
};
// Waits at most `timeout` for QEMU's migration to stop running, woken by its
// events: the status it ended in ("completed", "failed", "cancelled", "none";
// "" when the monitor stopped answering), or nullopt when it still runs.
// Giving up, if the caller must, is the caller's business: cancelling a
// background snapshot poisons QEMU 7.2 (memory_relay.hh).
std::optional<std::string> wait_for_migration_end(Monitor &mon, std::chrono::milliseconds timeout);

}  // namespace virtsnap::qemu
