// guest_ram.cc - THP re-collapse of QEMU's guest RAM (see guest_ram.hh).

#include "qemu/guest_ram.hh"

#define LOG_MODULE "qemu.guest_ram"
#include "util/log.hh"
#include "util/process.hh"
#include "util/raii.hh"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

// Older headers lack these (Linux 5.10 / 5.3 / 6.1).
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

namespace virtsnap::qemu::guest_ram {

namespace {

// A few calls rather than one: each collapses at most this much, so a QEMU
// that exits or a daemon that shuts down is noticed quickly.
constexpr uint64_t kChunk = 64ull << 20;
constexpr uint64_t kHuge = 2ull << 20;

}  // namespace

std::optional<pid_t> qemu_holding_file(int fd) {
    struct stat want {};
    if (::fstat(fd, &want) < 0) return std::nullopt;
    return process::process_holding_file(want.st_dev, want.st_ino, {"qemu-system", "qemu-kvm"});
}

std::optional<Mapping> find_guest_ram(pid_t pid, uint64_t min_bytes, uint64_t max_bytes) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/smaps");
    if (!f) return std::nullopt;
    std::optional<Mapping> best;
    Mapping cur;
    bool candidate = false;
    std::string line;
    auto finish = [&] {
        if (candidate && (!best || cur.length > best->length)) best = cur;
        candidate = false;
    };
    while (std::getline(f, line)) {
        unsigned long long a = 0, b = 0;
        char perms[8] = {};
        unsigned long long off = 0, inode = 0;
        char dev[16] = {};
        int path_at = -1;
        if (std::sscanf(line.c_str(), "%llx-%llx %7s %llx %15s %llu %n", &a, &b, perms, &off, dev, &inode,
                        &path_at) >= 6 &&
            line.find('-') < line.find(' ')) {
            finish();
            cur = Mapping{a, b - a, 0};
            bool anonymous = inode == 0 && (path_at < 0 || size_t(path_at) >= line.size());
            candidate = anonymous && std::strcmp(perms, "rw-p") == 0 && cur.length >= min_bytes &&
                        cur.length <= max_bytes;
            continue;
        }
        unsigned long long kb = 0;
        if (candidate && std::sscanf(line.c_str(), "AnonHugePages: %llu kB", &kb) == 1) cur.anon_huge_bytes = kb << 10;
    }
    finish();
    return best;
}

std::optional<uint64_t> collapse(pid_t pid, uint64_t ram_bytes) {
    auto started = std::chrono::steady_clock::now();
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (pidfd.get() < 0) {
        VS_DEBUG("THP collapse: pidfd_open(%d): %s", int(pid), std::strerror(errno));
        return std::nullopt;
    }
    // Guest RAM is the largest anonymous rw mapping no larger than the
    // migration's RAM total (+ alignment slack) and more than half of it;
    // other RAM blocks are small. RAM on hugetlbfs is a file mapping (and
    // has no huge pages to lose): no mapping qualifies, nothing is touched.
    uint64_t least = std::max<uint64_t>(32ull << 20, ram_bytes / 2);
    auto m = find_guest_ram(pid, least, ram_bytes + kHuge * 2);
    if (!m) {
        VS_DEBUG("THP collapse: no guest RAM mapping found in QEMU %d", int(pid));
        return std::nullopt;
    }
    uint64_t before = m->anon_huge_bytes;
    uint64_t begin = (m->start + kHuge - 1) & ~(kHuge - 1);
    uint64_t end = (m->start + m->length) & ~(kHuge - 1);
    int failures = 0, last_errno = 0;
    for (uint64_t at = begin; at < end; at += kChunk) {
        iovec iov{reinterpret_cast<void *>(at), size_t(std::min(kChunk, end - at))};
        if (::syscall(SYS_process_madvise, pidfd.get(), &iov, 1, MADV_COLLAPSE, 0) < 0) {
            last_errno = errno;
            ++failures;
            // No such process any more, or a kernel without MADV_COLLAPSE: stop.
            if (errno == ESRCH || errno == EINVAL || errno == EPERM || errno == ENOSYS) break;
        }
    }
    auto after = find_guest_ram(pid, least, ram_bytes + kHuge * 2);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    VS_INFO("THP collapse of QEMU %d guest RAM (%llu MiB): AnonHugePages %llu -> %s MiB in %lld ms%s%s", int(pid),
            (unsigned long long)(m->length >> 20), (unsigned long long)(before >> 20),
            after ? std::to_string(after->anon_huge_bytes >> 20).c_str() : "?", (long long)ms.count(),
            failures ? ", last error: " : "", failures ? std::strerror(last_errno) : "");
    if (!after) return std::nullopt;
    return after->anon_huge_bytes;
}

void collapse_in_background(pid_t pid, uint64_t ram_bytes) {
    std::thread([pid, ram_bytes] { (void)collapse(pid, ram_bytes); }).detach();
}

}  // namespace virtsnap::qemu::guest_ram
