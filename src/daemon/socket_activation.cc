// socket_activation.cc - LISTEN_FDS parsing and socket identification.

#include "daemon/socket_activation.hh"

#include "util/log.hh"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_MODULE "daemon.activation"

namespace virtsnap::daemon {

namespace {

constexpr int kListenFdsStart = 3;  // SD_LISTEN_FDS_START

Error activation_error(const std::string &what) {
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "socket activation: " + what);
}

// Parses a decimal number that must be all digits.
bool parse_number(const char *s, long long &out) {
    if (!s || !*s) return false;
    char *end = nullptr;
    errno = 0;
    out = std::strtoll(s, &end, 10);
    return !errno && end && !*end && out >= 0;
}

std::vector<std::string> split_names(const char *names) {
    std::vector<std::string> out;
    if (!names) return out;
    std::string s(names);
    size_t pos = 0;
    for (;;) {
        size_t colon = s.find(':', pos);
        out.push_back(s.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos));
        if (colon == std::string::npos) break;
        pos = colon + 1;
    }
    return out;
}

// The path a UNIX socket is bound to, or "" when it is not a listening UNIX stream socket.
std::string listening_unix_path(int fd) {
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) return {};
    len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) return {};
    sockaddr_un addr{};
    len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) < 0 || addr.sun_family != AF_UNIX) return {};
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(addr.sun_path, strnlen(addr.sun_path, n));
    return path.empty() ? std::string("@") : path;  // "@": abstract or unnamed, never one of ours
}

}  // namespace

Result<ActivatedSockets> take_activated_sockets(const std::string &rw_path, const std::string &ro_path) {
    ActivatedSockets out;
    const char *pid_s = std::getenv("LISTEN_PID");
    const char *fds_s = std::getenv("LISTEN_FDS");
    long long pid = 0, nfds = 0;
    bool for_us = parse_number(pid_s, pid) && pid == getpid() && parse_number(fds_s, nfds);
    std::vector<std::string> names = split_names(std::getenv("LISTEN_FDNAMES"));
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!for_us || nfds == 0) return out;
    if (nfds > 2)
        return fail(activation_error(std::to_string(nfds) + " sockets passed; expected the read-write and the "
                                                            "read-only socket"));

    std::vector<UniqueFd> fds;
    for (int i = 0; i < int(nfds); i++) fds.emplace_back(kListenFdsStart + i);
    for (int i = 0; i < int(nfds); i++) {
        int fd = fds[size_t(i)].get();
        // Inherited descriptors must not leak into QEMU.
        int flags = ::fcntl(fd, F_GETFD);
        if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
            return fail(activation_error("descriptor " + std::to_string(fd) + " is not open"));
        std::string path = listening_unix_path(fd);
        if (path.empty())
            return fail(activation_error("descriptor " + std::to_string(fd) +
                                         " is not a listening UNIX stream socket"));
        const std::string name = size_t(i) < names.size() ? names[size_t(i)] : std::string();
        bool is_rw = name == "virtsnapd.socket" || (name != "virtsnapd-ro.socket" && path == rw_path);
        bool is_ro = name == "virtsnapd-ro.socket" || (name != "virtsnapd.socket" && path == ro_path);
        UniqueFd &slot = is_rw ? out.rw : out.ro;
        if ((!is_rw && !is_ro) || slot.valid())
            return fail(activation_error("cannot tell what socket '" + name + "' (" + path + ") is for"));
        VS_INFO("using %s socket %s passed by systemd", is_rw ? "read-write" : "read-only", path.c_str());
        slot = std::move(fds[size_t(i)]);
    }
    return out;
}

}  // namespace virtsnap::daemon
