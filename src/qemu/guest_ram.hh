// guest_ram.hh - keeping QEMU's guest RAM on transparent huge pages between
// instant snapshots.
//
// Why: a background-snapshot migration write-protects guest RAM through
// userfaultfd, which splits QEMU's huge pages; the next snapshot's
// populate/write-protect walk over 4 KiB pages then costs tens to hundreds of
// milliseconds of guest pause (docs/snapshots.md, "Instant snapshots: the
// pause"). MADV_COLLAPSE applied from outside with process_madvise(2) (Linux
// >= 6.1) puts the huge pages back.
//
// Everything here is best effort: failures are logged, never reported, and
// nothing runs while the guest is paused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace virtsnap::qemu::guest_ram {

// The QEMU process (comm "qemu-system-*") that has the file open that `fd`
// refers to (same device and inode), e.g. the image fd passed with getfd.
std::optional<pid_t> qemu_holding_file(int fd);

// The mapping of `pid` that holds guest RAM: the private, anonymous,
// read-write mapping of at least `min_bytes` and at most `max_bytes`, the
// largest of them (QEMU's TCG code buffer is rwx and so never matches).
struct Mapping {
    uint64_t start = 0;
    uint64_t length = 0;
    uint64_t anon_huge_bytes = 0;   // AnonHugePages, from smaps
};
std::optional<Mapping> find_guest_ram(pid_t pid, uint64_t min_bytes, uint64_t max_bytes);

// Starts a detached thread that collapses the guest RAM mapping of `pid`
// into huge pages (process_madvise with MADV_COLLAPSE, chunk by chunk,
// through a pidfd so that a reused pid is never touched). `ram_bytes` is the
// migration's RAM total, which bounds the mapping's size.
void collapse_in_background(pid_t pid, uint64_t ram_bytes);

// The same, synchronously; returns the AnonHugePages bytes after, when known.
std::optional<uint64_t> collapse(pid_t pid, uint64_t ram_bytes);

}  // namespace virtsnap::qemu::guest_ram
