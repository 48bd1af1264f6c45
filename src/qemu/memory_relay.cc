// memory_relay.cc - starting, steering and waiting for virtsnap-relay.

#include "qemu/memory_relay.hh"

#include "util/file.hh"

#define LOG_MODULE "qemu.memory_relay"
#include "util/log.hh"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace virtsnap::qemu {

std::string relay_binary() {
    if (const char *env = std::getenv("VIRTSNAP_RELAY"); env && *env) return env;
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string sibling = file::dirname(self) + "/virtsnap-relay";
        if (::access(sibling.c_str(), X_OK) == 0) return sibling;
    }
    if (::access(VIRTSNAP_RELAY_BUILD_PATH, X_OK) == 0) return VIRTSNAP_RELAY_BUILD_PATH;
    return VIRTSNAP_RELAY_INSTALL_PATH;
}

Result<MemoryRelay> MemoryRelay::start(UniqueFd stream, int image_fd, uint64_t offset, size_t skip, bool direct) {
    int control[2];
    if (::pipe2(control, O_CLOEXEC) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot create the memory relay's control pipe"));
    UniqueFd control_read(control[0]);
    MemoryRelay r;
    r.control_.reset(control[1]);
    process::SpawnOptions so;
    so.argv = {relay_binary(), std::to_string(offset), std::to_string(skip)};
    if (direct) so.argv.push_back("direct");
    so.pass_fds = {{stream.get(), 3}, {control_read.get(), 4}, {image_fd, 5}};
    so.out = process::Output::null();
    so.daemonize = true;  // own session: it outlives the daemon, as QEMU does
    r.child_ = TRY(process::Child::spawn(so));
    VS_DEBUG("memory relay started, pid %d", int(r.child_.pid()));
    return r;
}

MemoryRelay::~MemoryRelay() {
    if (!control_.valid() && child_.pid() < 0) return;  // moved from
    if (!said_) (void)say('d');
    control_.reset();
    if (child_.pid() < 0 || child_.reaped()) return;
    auto st = child_.wait_for(std::chrono::seconds(2));
    if (st && *st) return;
    VS_INFO("memory relay %d still reading: it ends with QEMU's stream", int(child_.pid()));
    child_.detach();
}

Status MemoryRelay::say(char word) {
    if (said_) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "the memory relay was already told what to do");
    said_ = true;
    ssize_t n;
    do n = ::write(control_.get(), &word, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) return fail(make_system_error(VIR_FROM_QEMU, errno, "cannot reach the memory relay"));
    control_.reset();
    return ok();
}

Status MemoryRelay::open_gate() { return say('g'); }

Status MemoryRelay::discard() { return say('d'); }

void MemoryRelay::abandon() {
    if (!child_.reaped()) (void)child_.signal(SIGUSR1);
}

Status MemoryRelay::finish(std::chrono::milliseconds timeout) {
    auto st = TRY(child_.wait_for(timeout));
    if (!st) return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU, "the memory relay did not finish");
    if (st->success()) return ok();
    if (st->exited && st->code > 0 && st->code < 125)
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    std::string("cannot write the memory image: ") + std::strerror(st->code));
    return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "the memory relay failed: " + st->describe());
}

bool abandon_memory_relay(const std::string &path) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) < 0) return false;
    auto pid = process::process_holding_file(sb.st_dev, sb.st_ino, {"virtsnap-relay"});
    if (!pid) return false;
    VS_INFO("abandoning the memory relay %d of %s", int(*pid), path.c_str());
    return ::kill(*pid, SIGUSR1) == 0;
}

bool wait_for_memory_relay(const std::string &path, std::chrono::milliseconds timeout) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return false;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return false;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

}  // namespace virtsnap::qemu
