// virtsnapd.cc - the virtsnap daemon: serves libvirt's RPC protocol for QEMU
// domains on UNIX sockets.
//
//   virtsnapd [--root DIR] [--config FILE] [--verbose]
//
// With --root everything (configuration, snapshot metadata, runtime state,
// logs, sockets) lives below DIR; without it the system layout is used
// (/etc/virtsnap, /var/lib/virtsnap, /run/virtsnap, /var/log/virtsnap).
// One daemon per root: the pid file is held locked. SIGTERM/SIGINT stop the
// daemon cleanly; running guests keep running and are re-attached next start.
// Under systemd socket activation the sockets come from virtsnapd.socket and
// virtsnapd-ro.socket (socket_activation.hh).

#include "conf/state_layout.hh"
#include "daemon/daemon_config.hh"
#include "daemon/qemu_driver.hh"
#include "daemon/socket_activation.hh"
#include "rpc/server.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <glib-unix.h>
#include <glib.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <unistd.h>

#define LOG_MODULE "daemon"

using namespace virtsnap;

namespace {

struct Options {
    std::string root;
    std::string config;
    bool verbose = false;
};

void usage(FILE *out) {
    std::fprintf(out,
                 "Usage: virtsnapd [--root DIR] [--config FILE] [--verbose]\n"
                 "  --root DIR     keep configuration, metadata, state, logs and sockets below DIR\n"
                 "  --config FILE  configuration file (default: <config dir>/virtsnapd.conf)\n"
                 "  --verbose      log at info level\n");
}

bool parse_args(int argc, char **argv, Options &o) {
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](std::string &dst) {
            if (i + 1 >= argc) return false;
            dst = argv[++i];
            return true;
        };
        if (a == "--root") { if (!value(o.root)) return false; }
        else if (a.rfind("--root=", 0) == 0) o.root = a.substr(7);
        else if (a == "--config" || a == "-f") { if (!value(o.config)) return false; }
        else if (a == "--verbose" || a == "-v") o.verbose = true;
        else if (a == "--help" || a == "-h") { usage(stdout); std::exit(0); }
        else if (a == "--version") { std::printf("virtsnapd 0.1.0\n"); std::exit(0); }
        else return false;
    }
    return true;
}

int fail_startup(const Error &e) {
    std::fprintf(stderr, "virtsnapd: error: %s\n", e.message().c_str());
    return 1;
}

// Holds the pid file locked for the daemon's life: a second daemon on the
// same root fails here instead of fighting over sockets and QEMUs.
Result<UniqueFd> lock_pid_file(const std::string &path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) return fail(make_system_error(VIR_FROM_NONE, errno, "Failed to open pid file '" + path + "'"));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = {};
        ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
        std::string pid = n > 0 ? std::string(buf, size_t(n)) : std::string("?");
        while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_NONE,
                    "another virtsnapd (pid " + pid + ") is already running with pid file '" + path + "'");
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (::ftruncate(fd.get(), 0) < 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) != ssize_t(pid.size()))
        return fail(make_system_error(VIR_FROM_NONE, errno, "Failed to write pid file '" + path + "'"));
    return fd;
}

gboolean on_stop_signal(gpointer loop) {
    g_main_loop_quit(static_cast<GMainLoop *>(loop));
    return G_SOURCE_CONTINUE;
}

}  // namespace

int main(int argc, char **argv) {
    Options opts;
    if (!parse_args(argc, argv, opts)) {
        usage(stderr);
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    // Handled from the start: a SIGTERM while guests are being re-attached
    // still ends in a clean stop (exit 0, sockets and pid file removed).
    GMainLoopPtr loop(g_main_loop_new(nullptr, FALSE));
    g_unix_signal_add(SIGTERM, on_stop_signal, loop.get());
    g_unix_signal_add(SIGINT, on_stop_signal, loop.get());

    Result<StateLayout> layout = opts.root.empty() ? Result<StateLayout>(StateLayout::system())
                                                   : StateLayout::embedded(opts.root);
    if (!layout) return fail_startup(layout.error());
    if (auto st = layout->create_dirs(); !st) return fail_startup(st.error());

    std::string config_path = opts.config.empty() ? layout->config_dir() + "/../virtsnapd.conf" : opts.config;
    auto config = daemon::DaemonConfig::load(config_path);
    if (!config) return fail_startup(config.error());
    log::configure(opts.verbose ? std::min(config->log_level, 2) : config->log_level, config->log_filters,
                   config->log_outputs);
    // As libvirtd's LIBVIRT_LOG_* variables, the environment wins over the
    // configuration file.
    if (std::getenv("VIRTSNAP_LOG_LEVEL") || std::getenv("VIRTSNAP_LOG_FILTERS")) log::configure_from_env();

    auto lock = lock_pid_file(layout->pid_file());
    if (!lock) return fail_startup(lock.error());
    // Removed on every way out, while still locked: no stale pid file is left.
    ScopeExit remove_pid_file([&] { (void)file::remove(layout->pid_file()); });
    // Before anything can spawn a child: the LISTEN_* variables are removed here.
    auto activated = daemon::take_activated_sockets(layout->daemon_socket(), layout->daemon_socket_ro());
    if (!activated) return fail_startup(activated.error());

    daemon::QemuDriver driver(*layout, *config);
    if (auto st = driver.load(); !st) return fail_startup(st.error());

    rpc::ServerOptions sopts;
    sopts.rw_socket_path = layout->daemon_socket();
    sopts.ro_socket_path = layout->daemon_socket_ro();
    sopts.rw_mode = config->unix_sock_rw_perms;
    sopts.ro_mode = config->unix_sock_ro_perms;
    if (!config->unix_sock_group.empty()) {
        struct group *g = getgrnam(config->unix_sock_group.c_str());
        if (!g)
            return fail_startup(make_error(VIR_ERR_CONF_SYNTAX, VIR_FROM_CONF,
                                           "unknown group '" + config->unix_sock_group + "'"));
        sopts.group = g->gr_gid;
    }
    sopts.workers = config->max_workers;
    sopts.prio_workers = config->prio_workers;
    // libvirtd's meaning: an interval <= 0 never pings (PINGs are still answered).
    sopts.limits.keepalive_interval = std::chrono::seconds(std::max(config->keepalive_interval, 0));
    sopts.limits.keepalive_count = config->keepalive_count;
    sopts.rw_listen_fd = activated->rw.release();
    sopts.ro_listen_fd = activated->ro.release();
    rpc::Server server(driver, sopts);
    driver.set_event_sink(&server.events());
    if (auto st = server.start(); !st) return fail_startup(st.error());
    VS_INFO("virtsnapd serving on %s", layout->daemon_socket().c_str());
    std::fprintf(stderr, "virtsnapd: listening on %s\n", layout->daemon_socket().c_str());

    g_main_loop_run(loop.get());

    VS_INFO("virtsnapd stopping; running guests keep running");
    server.stop();
    driver.set_event_sink(nullptr);
    driver.detach_all();
    return 0;
}
