// migration_gate.cc - the gate pipe and telling that QEMU is held by it.

#include "qemu/migration_gate.hh"

#include "util/file.hh"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

namespace virtsnap::qemu {

Result<MigrationGate> MigrationGate::shut() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot create the migration gate pipe"));
    MigrationGate g;
    g.read_.reset(fds[0]);
    g.write_.reset(fds[1]);
    if (::fcntl(g.write_.get(), F_SETPIPE_SZ, int(kFillerBytes)) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot shrink the migration gate pipe"));
    // F_SETPIPE_SZ rounds up to a power of two of pages: fill what it got.
    int size = ::fcntl(g.write_.get(), F_GETPIPE_SZ);
    if (size != int(kFillerBytes))
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "the migration gate pipe holds " + std::to_string(size) + " bytes, not one page");
    std::string filler(kFillerBytes, '\0');
    if (::write(g.write_.get(), filler.data(), filler.size()) != ssize_t(filler.size()))
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot fill the migration gate pipe"));
    return g;
}

namespace {

// /proc files: polled every half millisecond, so raw reads.
bool read_small(const std::string &path, std::string &out) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return false;
    char buf[128];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) return false;
    out.assign(buf, size_t(n));
    return true;
}

}  // namespace

bool thread_blocked_in_pipe_write(pid_t pid) {
    std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
    auto tasks = file::list_dir(task_dir);
    if (!tasks) return false;
    for (const auto &tid : *tasks) {
        std::string text;
        if (read_small(task_dir + "/" + tid + "/wchan", text) && text.find("pipe_write") != std::string::npos)
            return true;
    }
    return false;
}

bool wait_until_gate_holds(pid_t pid, std::chrono::milliseconds timeout, const std::function<bool()> &give_up) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto next_ask = std::chrono::steady_clock::now();
    for (;;) {
        if (thread_blocked_in_pipe_write(pid)) return true;
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        if (give_up && now >= next_ask) {
            if (give_up()) return false;
            next_ask = now + std::chrono::milliseconds(20);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

}  // namespace virtsnap::qemu
