// server.cc - listening sockets, the loop thread and event fan-out.

#include "rpc/server.hh"

#include "util/log.hh"
#include "util/raii.hh"

#include <glib-unix.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_MODULE "rpc.server"

namespace virtsnap::rpc {

Server::Server(Driver &driver, ServerOptions options) : driver_(driver), options_(std::move(options)) {}

Server::~Server() {
    stop();
    // Passed-in sockets that start() never took over.
    if (options_.rw_listen_fd >= 0) ::close(options_.rw_listen_fd);
    if (options_.ro_listen_fd >= 0) ::close(options_.ro_listen_fd);
}

Status Server::listen_on(const std::string &path, mode_t mode, bool read_only) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return fail(VIR_ERR_INVALID_ARG, VIR_FROM_RPC, "UNIX socket path '" + path + "' too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return fail(make_system_error(VIR_FROM_RPC, errno, "Failed to create socket"));

    // A socket file left by a daemon that died is replaced; a live one is not.
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe.valid() && ::connect(probe.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0)
            return fail(make_system_error(VIR_FROM_RPC, EADDRINUSE, "Failed to bind socket to '" + path + "'"));
        ::unlink(path.c_str());
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0)
        return fail(make_system_error(VIR_FROM_RPC, errno, "Failed to bind socket to '" + path + "'"));
    // Permissions are set before listen(): until then nobody can connect.
    if (::chmod(path.c_str(), mode) < 0) {
        int err = errno;
        ::unlink(path.c_str());
        return fail(make_system_error(VIR_FROM_RPC, err, "Failed to change permissions of '" + path + "'"));
    }
    if (options_.group && ::chown(path.c_str(), uid_t(-1), *options_.group) < 0) {
        int err = errno;
        ::unlink(path.c_str());
        return fail(make_system_error(VIR_FROM_RPC, err, "Failed to change group of '" + path + "'"));
    }
    if (::listen(fd.get(), 30) < 0) {
        int err = errno;
        ::unlink(path.c_str());
        return fail(make_system_error(VIR_FROM_RPC, err, "Failed to listen on '" + path + "'"));
    }

    add_listener(fd.release(), path, read_only, true);
    return ok();
}

Status Server::adopt(int fd, const std::string &path, bool read_only) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int err = errno;
        ::close(fd);
        return fail(make_system_error(VIR_FROM_RPC, err, "Failed to use the socket passed for '" + path + "'"));
    }
    add_listener(fd, path, read_only, false);
    return ok();
}

void Server::add_listener(int fd, const std::string &path, bool read_only, bool remove_on_stop) {
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->read_only = read_only;
    l->path = path;
    l->remove_on_stop = remove_on_stop;
    l->server = this;
    l->source = g_unix_fd_source_new(l->fd, G_IO_IN);
    g_source_set_callback(l->source, G_SOURCE_FUNC(&Server::on_accept), l.get(), nullptr);
    g_source_attach(l->source, ctx_);
    listeners_.push_back(std::move(l));
}

Status Server::start() {
    {
        std::lock_guard lock(state_mu_);
        if (running_) return ok();
    }
    ctx_ = g_main_context_new();
    loop_ = g_main_loop_new(ctx_, FALSE);
    pool_ = std::make_unique<WorkerPool>(options_.workers, options_.prio_workers);

    // A socket systemd did not pass (its unit not enabled) is made here, as libvirtd does.
    int rw_fd = std::exchange(options_.rw_listen_fd, -1), ro_fd = std::exchange(options_.ro_listen_fd, -1);
    Status s = rw_fd >= 0 ? adopt(rw_fd, options_.rw_socket_path, false)
                          : listen_on(options_.rw_socket_path, options_.rw_mode, false);
    if (ro_fd >= 0 && (!s || options_.ro_socket_path.empty())) ::close(ro_fd);
    else if (s && ro_fd >= 0) s = adopt(ro_fd, options_.ro_socket_path, true);
    else if (s && !options_.ro_socket_path.empty()) s = listen_on(options_.ro_socket_path, options_.ro_mode, true);
    if (!s) {
        for (auto &l : listeners_) {
            g_source_destroy(l->source);
            g_source_unref(l->source);
            ::close(l->fd);
            if (l->remove_on_stop) ::unlink(l->path.c_str());
        }
        listeners_.clear();
        pool_.reset();
        g_main_loop_unref(loop_);
        g_main_context_unref(ctx_);
        loop_ = nullptr;
        ctx_ = nullptr;
        return s;
    }

    {
        std::lock_guard lock(state_mu_);
        running_ = true;
    }
    thread_ = std::thread([this] {
        g_main_context_push_thread_default(ctx_);
        g_main_loop_run(loop_);
        g_main_context_pop_thread_default(ctx_);
    });
    VS_INFO("listening on %s%s%s", options_.rw_socket_path.c_str(), options_.ro_socket_path.empty() ? "" : " and ",
            options_.ro_socket_path.c_str());
    return ok();
}

void Server::stop() {
    {
        std::lock_guard lock(state_mu_);
        if (!running_) return;
        running_ = false;
    }
    post_to_loop(ctx_, [this] {
        auto conns = std::move(connections_);
        connections_.clear();
        for (auto &[id, c] : conns) c->close();
        conns.clear();
        for (auto &l : listeners_) {
            g_source_destroy(l->source);
            g_source_unref(l->source);
            l->source = nullptr;
        }
        g_main_loop_quit(loop_);
    });
    thread_.join();
    // Driver calls still running finish here; their replies go nowhere.
    pool_->shutdown();
    for (auto &l : listeners_) {
        ::close(l->fd);
        if (l->remove_on_stop) ::unlink(l->path.c_str());
    }
    listeners_.clear();
    g_main_loop_unref(loop_);
    g_main_context_unref(ctx_);  // frees reply closures that were never run
    loop_ = nullptr;
    ctx_ = nullptr;
    pool_.reset();
    connection_count_ = 0;
}

gboolean Server::on_accept(gint, GIOCondition, gpointer p) {
    auto *l = static_cast<Listener *>(p);
    l->server->accept_client(*l);
    return G_SOURCE_CONTINUE;
}

void Server::accept_client(Listener &l) {
    for (;;) {
        int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                VS_WARN("accept on %s failed: %s", l.path.c_str(), g_strerror(errno));
            return;
        }
        if (connections_.size() >= options_.max_clients) {
            VS_WARN("refusing a client on %s: %u clients already", l.path.c_str(), options_.max_clients);
            ::close(fd);
            continue;
        }
        uint64_t id = next_connection_id_++;
        auto conn = std::make_shared<Connection>(driver_, *pool_, ctx_, options_.limits, id, l.read_only, fd,
                                                 [this](uint64_t gone) {
                                                     if (connections_.erase(gone)) connection_count_--;
                                                 });
        connections_.emplace(id, conn);
        connection_count_++;
        conn->attach();
        VS_DEBUG("client %llu connected on %s", (unsigned long long)id, l.path.c_str());
    }
}

void Server::for_each_session(std::function<void(Session &)> fn) {
    std::lock_guard lock(state_mu_);
    if (!running_) return;
    post_to_loop(ctx_, [this, fn = std::move(fn)] {
        // Copy first: a failed write closes a connection and edits the map.
        std::vector<std::shared_ptr<Connection>> conns;
        for (auto &[id, c] : connections_) conns.push_back(c);
        for (auto &c : conns) fn(c->session());
    });
}

void Server::domain_lifecycle(const DomainRef &dom, int32_t event, int32_t detail) {
    for_each_session([dom, event, detail](Session &s) { s.deliver_lifecycle(dom, event, detail); });
}

void Server::domain_block_job(const DomainRef &dom, const std::string &source_path, const std::string &target,
                              int32_t type, int32_t status) {
    for_each_session([=](Session &s) { s.deliver_block_job(dom, source_path, target, type, status); });
}

void Server::domain_job_completed(const DomainRef &dom, const std::vector<TypedParam> &stats) {
    for_each_session([dom, stats](Session &s) { s.deliver_job_completed(dom, stats); });
}

}  // namespace virtsnap::rpc
