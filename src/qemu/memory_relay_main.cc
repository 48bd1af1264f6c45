// memory_relay_main.cc - virtsnap-relay: moves a migration stream from a pipe
// into a memory image, for the gated order of instant snapshots
// (qemu/memory_relay.hh has the protocol; docs/snapshots.md the why).
//
//   virtsnap-relay OFFSET SKIP [direct]
//     fd 3  the read end of the gate pipe QEMU writes the stream into
//     fd 4  the read end of the control pipe from virtsnapd
//     fd 5  the memory image, written from OFFSET on (never read, never seeked)
//   "direct": the stream of a paused guest, written with O_DIRECT where the
//   file system takes it (relay_direct_copy.hh); elsewhere as without it.
//
// It is a separate process, in its own session, so that the stream keeps
// flowing when virtsnapd dies: a broken stream leaves QEMU 7.2 unable to
// migrate again, and so does cancelling one (migrate_cancel): SIGUSR1 is how
// a job is abandoned instead, the relay drops the rest of the stream and
// QEMU's snapshot completes into nothing. Exit status: 0 when every byte
// reached the image (or was dropped on request), else the errno of the first
// failure (125: usage).
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <csignal>

#include "qemu/relay_direct_copy.hh"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace {

constexpr int kStream = 3, kControl = 4, kImage = 5;
constexpr size_t kChunk = 1 << 20;
constexpr int kUsage = 125;
// At 300 MiB/s a 1 MiB pipe fills in about 3 ms: 1 ms between moves never
// lets QEMU block on a full pipe, yet moves hundreds of KiB per call.
constexpr useconds_t kBatchWaitUs = 1000;

volatile sig_atomic_t g_abandoned = 0;

void on_abandon(int) { g_abandoned = 1; }

bool parse_u64(const char *s, uint64_t &out) {
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || !end || *end || end == s) return false;
    out = v;
    return true;
}

// What virtsnapd said: 'g' (write), 'd' (discard), or nothing before it went
// away, which counts as 'g': recovery decides from QEMU's state whether the
// image is kept, and it can only keep a complete one.
bool wait_for_word() {
    char word = 0;
    ssize_t n;
    do n = ::read(kControl, &word, 1);
    while (n < 0 && errno == EINTR);
    ::close(kControl);
    return !(n == 1 && word == 'd');
}

// Reads and drops `bytes` from the stream (the gate's filler).
int skip(uint64_t bytes, char *buf) {
    while (bytes > 0) {
        ssize_t n = ::read(kStream, buf, bytes < kChunk ? bytes : kChunk);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        bytes -= uint64_t(n);
    }
    return 0;
}

int pwrite_all(const char *buf, size_t len, off_t &off) {
    while (len > 0) {
        ssize_t n = ::pwrite(kImage, buf, len, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        buf += n;
        len -= size_t(n);
        off += n;
    }
    return 0;
}

// Starts writeback of each 64 MiB the relay wrote: the daemon flushes the
// image before it counts as complete, and a flush begun while the stream
// still flows leaves that one only the tail.
void start_writeback(off_t &from, off_t to) {
    constexpr off_t kWritebackStep = off_t(64) << 20;
    if (to - from < kWritebackStep) return;
    (void)::sync_file_range(kImage, from, to - from, SYNC_FILE_RANGE_WRITE);
    from = to;
}

// The errno of the first failure as the exit status (125 and up are taken).
int exit_code(int failure) { return failure == 0 ? 0 : (failure < kUsage ? failure : kUsage - 1); }

}  // namespace

int main(int argc, char **argv) {
    uint64_t offset = 0, filler = 0;
    bool direct = argc == 4 && std::strcmp(argv[3], "direct") == 0;
    if ((argc != 3 && !direct) || !parse_u64(argv[1], offset) || !parse_u64(argv[2], filler)) {
        std::fprintf(stderr, "usage: virtsnap-relay OFFSET SKIP [direct] (fds 3: stream, 4: control, 5: image)\n");
        return kUsage;
    }
    static char buf[kChunk];
    // No SA_RESTART: a blocked splice or read returns EINTR and sees the flag.
    struct sigaction sa {};
    sa.sa_handler = on_abandon;
    ::sigaction(SIGUSR1, &sa, nullptr);
    // Held until exit: recovery knows the image is final once it can take it.
    if (::flock(kImage, LOCK_EX) < 0) return errno;
    bool keep = wait_for_word();
    // The gate was one page. Grown before the filler goes: QEMU, let through,
    // then writes device state (guest paused) without waiting for us.
    (void)::fcntl(kStream, F_SETPIPE_SZ, int(kChunk));
    if (int e = skip(filler, buf)) return e;

    if (direct) {
        // The same file opened again: O_DIRECT is a property of the open file.
        int image_direct = ::open("/proc/self/fd/5", O_WRONLY | O_DIRECT | O_CLOEXEC);
        if (image_direct >= 0) {
            int failure = virtsnap::relay::direct_copy(kStream, kImage, image_direct, offset, g_abandoned);
            if (failure)
                std::fprintf(stderr, "virtsnap-relay: cannot write the memory image: %s\n", std::strerror(failure));
            return exit_code(failure);
        }
    }

    off_t off = off_t(offset), writeback_from = off;
    int failure = 0;
    bool use_splice = true, truncated = false;
    for (;;) {
        if (g_abandoned && !truncated) {
            truncated = true;
            keep = false;
            (void)::ftruncate(kImage, off_t(offset));
        }
        bool writing = keep && failure == 0;
        if (writing && use_splice) {
            ssize_t n = ::splice(kStream, nullptr, kImage, &off, kChunk, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (n > 0) {
                start_writeback(writeback_from, off);
                // QEMU writes 32 KiB at a time; waking for each costs both
                // sides a context switch, which on a small host takes CPU from
                // QEMU's writer. Let the pipe fill a little between moves.
                if (size_t(n) < kChunk / 2) ::usleep(kBatchWaitUs);
                continue;
            }
            if (n == 0) break;
            if (errno == EINTR) continue;
            if (errno == EINVAL || errno == ENOSYS) {
                use_splice = false;   // a target splice cannot write to
                continue;
            }
            failure = errno;
        } else {
            ssize_t n = ::read(kStream, buf, kChunk);
            if (n == 0) break;
            if (n < 0) {
                if (errno == EINTR) continue;
                if (failure == 0) failure = errno;
                break;
            }
            if (writing) {
                failure = pwrite_all(buf, size_t(n), off);
                if (failure == 0) start_writeback(writeback_from, off);
            }
        }
        if (failure && !truncated) {
            truncated = true;
            // Keep reading so QEMU's stream completes (a failed stream would
            // poison QEMU 7.2), but leave an image that holds no memory, which
            // nobody mistakes for a complete one.
            std::fprintf(stderr, "virtsnap-relay: cannot write the memory image: %s\n", std::strerror(failure));
            (void)::ftruncate(kImage, off_t(offset));
        }
    }
    return exit_code(failure);
}
