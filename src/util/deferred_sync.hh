// deferred_sync.hh - group commit for metadata files: atomic at once, durable
// a moment later.
//
// A metadata write has two promises. Atomicity: a reader (or a daemon killed
// at any instant and restarted) sees the old file or the new one, never a
// mix. That comes from writing a temporary file and renaming it over the old
// one, and costs nothing. Durability against power loss needs fsync, which
// costs 1.5-3 ms on the disks measured here - more than everything else a
// snapshot redefine does, and libvirt pays it on every file.
//
// Writes made with Durability::Deferred keep the first promise at once and
// hand the second to this object: the directory is noted, and a background
// thread makes every noted write durable within `delay` with one syncfs() per
// filesystem, however many files were written (1,000 files: ~75 ms for one
// syncfs against ~1.6 s for 1,000 fsyncs). Code whose correctness depends on
// a write being on disk - a job journal about to be removed, a daemon about
// to exit - calls flush(), which returns once every write noted before the
// call is durable.
//
// What a power loss can cost: the metadata writes of the last `delay`. A file
// replaced by rename then holds its old or its new text (ext4 orders the data
// of a file renamed over another before the rename); a newly created file may
// come back empty, and the loader reports and skips it as any corrupt file.
// Process crashes cost nothing. set_immediate(true) restores fsync-per-write.
#pragma once

#include "util/result.hh"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace virtsnap {

class DeferredSync {
public:
    // The process-wide instance (its thread starts on first use).
    static DeferredSync &instance();

    DeferredSync();
    ~DeferredSync();
    DeferredSync(const DeferredSync &) = delete;
    DeferredSync &operator=(const DeferredSync &) = delete;

    // A file in `dir` was renamed into place without fsync. Thread-safe.
    void note(const std::string &dir);
    // Makes every write noted before the call durable; reports the first
    // failure of any sync it waited for.
    [[nodiscard]] Status flush();

    // Immediate mode: callers fsync every write themselves (write_atomic
    // asks); note() is then never called.
    void set_immediate(bool immediate);
    bool immediate() const;
    // How long the background thread lets writes accumulate (default 50 ms).
    void set_delay(std::chrono::milliseconds delay);

    // Counters for tests and the debug log.
    uint64_t noted() const;
    uint64_t syncs() const;

private:
    void run();
    // Syncs the pending filesystems; the caller holds sync_mu_.
    Status sync_pending();

    mutable std::mutex mu_;
    std::condition_variable wake_;
    // One directory per filesystem (st_dev) with unsynced writes.
    std::map<uint64_t, std::string> pending_;
    bool stop_ = false;
    bool immediate_ = false;
    std::chrono::milliseconds delay_{50};
    uint64_t noted_ = 0, syncs_ = 0;
    // Held for the whole of a sync, taken before pending_ is emptied, so a
    // flush() that gets it knows no sync of earlier writes is still running.
    std::mutex sync_mu_;
    std::thread thread_;
};

}  // namespace virtsnap
