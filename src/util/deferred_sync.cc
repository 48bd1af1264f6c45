// deferred_sync.cc - the background syncfs() behind Durability::Deferred.

#include "util/deferred_sync.hh"

#include "util/file.hh"

#include "util/log.hh"
#include "util/raii.hh"

#include <cerrno>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MODULE "util.deferred_sync"

namespace virtsnap {

DeferredSync &DeferredSync::instance() {
    static DeferredSync sync;
    return sync;
}

DeferredSync::DeferredSync() : thread_([this] { run(); }) {}

DeferredSync::~DeferredSync() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    Status st = flush();
    if (!st) VS_ERROR("metadata sync at exit failed: %s", st.error().message().c_str());
}

void DeferredSync::note(const std::string &dir) {
    {
        // A burst writes into one directory: once it is pending, the thread
        // is already counting down to its sync and needs no wake-up.
        std::lock_guard lock(mu_);
        for (const auto &[dev, pending_dir] : pending_) {
            if (pending_dir != dir) continue;
            noted_++;
            return;
        }
    }
    struct stat sb;
    if (::stat(dir.c_str(), &sb) < 0) {
        // Nothing to key it by: sync it on its own next round.
        VS_WARN("cannot stat '%s' for a deferred sync: %s", dir.c_str(), g_strerror(errno));
        sb.st_dev = ~dev_t(0);
    }
    bool was_idle;
    {
        std::lock_guard lock(mu_);
        was_idle = pending_.empty();
        pending_.try_emplace(uint64_t(sb.st_dev), dir);
        noted_++;
    }
    if (was_idle) wake_.notify_one();
}

Status DeferredSync::sync_pending() {
    std::map<uint64_t, std::string> batch;
    {
        std::lock_guard lock(mu_);
        batch.swap(pending_);
    }
    Status first = ok();
    for (const auto &[dev, dir] : batch) {
        // The directory stands for its filesystem. It may be gone by now (a
        // domain undefined with its snapshots) while other writes noted under
        // its key are not: any directory above it names the same filesystem
        // unless a mount point is crossed, which no metadata tree has.
        std::string path = dir;
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        while (!fd.valid() && errno == ENOENT && path != "/" && path != ".") {
            path = file::dirname(path);
            fd.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        }
        int rc = fd.valid() ? ::syncfs(fd.get()) : -1;
        if (rc < 0) {
            Error e = make_system_error(VIR_FROM_NONE, errno, "cannot sync the filesystem of '" + dir + "'");
            VS_ERROR("%s", e.message().c_str());
            if (first) first = fail(std::move(e));
        }
    }
    if (!batch.empty()) {
        std::lock_guard lock(mu_);
        syncs_ += batch.size();
    }
    return first;
}

Status DeferredSync::flush() {
    std::lock_guard sync_lock(sync_mu_);
    return sync_pending();
}

void DeferredSync::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        wake_.wait(lock, [&] { return stop_ || !pending_.empty(); });
        if (stop_) return;
        // Let a burst of writes accumulate, then sync them together.
        wake_.wait_for(lock, delay_, [&] { return stop_; });
        if (stop_) return;
        lock.unlock();
        {
            std::lock_guard sync_lock(sync_mu_);
            Status st = sync_pending();
            (void)st;  // logged where it happened; flush() callers see their own
        }
        lock.lock();
    }
}

void DeferredSync::set_immediate(bool immediate) {
    std::lock_guard lock(mu_);
    immediate_ = immediate;
}

bool DeferredSync::immediate() const {
    std::lock_guard lock(mu_);
    return immediate_;
}

void DeferredSync::set_delay(std::chrono::milliseconds delay) {
    std::lock_guard lock(mu_);
    delay_ = delay;
}

uint64_t DeferredSync::noted() const {
    std::lock_guard lock(mu_);
    return noted_;
}

uint64_t DeferredSync::syncs() const {
    std::lock_guard lock(mu_);
    return syncs_;
}

}  // namespace virtsnap
