// server.hh - libvirt's RPC server: UNIX sockets (read-write and read-only), a
// GLib main loop on its own thread and GMainContext, a worker pool for driver
// calls, and event fan-out. The daemon creates one Server over its Driver and
// publishes domain events through Server::events().
//
// Socket permissions default to owner-only (0600) for both sockets. libvirtd's
// defaults are 0700 (read-write) and 0777 (read-only, guarded by polkit there);
// without an access-control layer virtsnap keeps the read-only socket private
// too unless the configuration opens it (ro_mode, group).
#pragma once

#include "rpc/connection.hh"
#include "rpc/driver.hh"
#include "rpc/worker_pool.hh"

#include "util/result.hh"

#include <glib.h>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace virtsnap::rpc {

struct ServerOptions {
    std::string rw_socket_path;  // required, e.g. DIR/run/virtsnapd-sock
    std::string ro_socket_path;  // empty: no read-only socket
    mode_t rw_mode = 0600;
    mode_t ro_mode = 0600;
    std::optional<gid_t> group;  // group owner of both sockets
    // Sockets already bound and listening (systemd socket activation): the
    // server takes them over instead of binding the path, and neither changes
    // their mode nor removes them; whoever made them (the .socket unit) owns them.
    int rw_listen_fd = -1;
    int ro_listen_fd = -1;
    unsigned workers = 5;        // libvirtd's min_workers
    unsigned prio_workers = 5;   // libvirtd's prio_workers: run only high-priority calls
    unsigned max_clients = 5000;
    ConnectionLimits limits;
};

class Server : public EventSink {
public:
    Server(Driver &driver, ServerOptions options);
    ~Server() override;
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    // Binds the sockets and starts the loop thread and workers.
    [[nodiscard]] Status start();
    // Closes every connection, waits for running driver calls, removes the sockets.
    // Call it from outside the loop thread (never from a Driver method).
    void stop();

    EventSink &events() { return *this; }
    // Clients currently connected (for tests and statistics).
    size_t connection_count() const { return connection_count_.load(); }

    // EventSink: thread-safe; delivery happens on the loop thread.
    void domain_lifecycle(const DomainRef &dom, int32_t event, int32_t detail) override;
    void domain_block_job(const DomainRef &dom, const std::string &source_path, const std::string &target,
                          int32_t type, int32_t status) override;
    void domain_job_completed(const DomainRef &dom, const std::vector<TypedParam> &stats) override;

private:
    struct Listener {
        int fd = -1;
        bool read_only = false;
        std::string path;
        bool remove_on_stop = true;  // false for sockets passed in
        GSource *source = nullptr;
        Server *server = nullptr;
    };
    [[nodiscard]] Status listen_on(const std::string &path, mode_t mode, bool read_only);
    [[nodiscard]] Status adopt(int fd, const std::string &path, bool read_only);
    void add_listener(int fd, const std::string &path, bool read_only, bool remove_on_stop);
    static gboolean on_accept(gint fd, GIOCondition cond, gpointer listener);
    void accept_client(Listener &l);
    void for_each_session(std::function<void(Session &)> fn);

    Driver &driver_;
    ServerOptions options_;
    GMainContext *ctx_ = nullptr;
    GMainLoop *loop_ = nullptr;
    std::thread thread_;
    std::unique_ptr<WorkerPool> pool_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<uint64_t, std::shared_ptr<Connection>> connections_;  // loop thread only
    uint64_t next_connection_id_ = 1;
    std::atomic<size_t> connection_count_{0};
    std::mutex state_mu_;  // guards running_ against EventSink callers
    bool running_ = false;
};

}  // namespace virtsnap::rpc
