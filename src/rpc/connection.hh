// connection.hh - one client socket on the server's event loop: framing with
// length checks, a read buffer that only grows with bytes actually received, a
// write queue, the per-client limit of calls in flight, and keepalive.
//
// Everything here runs on the loop thread. Driver calls go to the WorkerPool;
// their replies come back as closures posted to the loop that hold only a
// weak_ptr, so a client that disconnected mid-call just has its reply dropped.
#pragma once

#include "rpc/driver.hh"
#include "rpc/frame_reader.hh"
#include "rpc/session.hh"
#include "rpc/worker_pool.hh"

#include <glib.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

namespace virtsnap::rpc {

// libvirtd's keepalive semantics (virKeepAlive): after `keepalive_interval`
// of silence the client is pinged, at most `keepalive_count` times, and
// dropped one interval after the last unanswered ping; a count of 0 drops it
// after one silent interval without pinging. An interval <= 0 disables
// pinging (PINGs from the client are still answered).
struct ConnectionLimits {
    unsigned max_requests = 5;  // calls in flight before reading pauses (max_client_requests)
    std::chrono::milliseconds keepalive_interval{5000};
    unsigned keepalive_count = 5;
    bool keepalive_enabled() const { return keepalive_interval.count() > 0; }
};

class Connection : public SessionIo, public std::enable_shared_from_this<Connection> {
public:
    using CloseHook = std::function<void(uint64_t id)>;

    Connection(Driver &driver, WorkerPool &pool, GMainContext *ctx, ConnectionLimits limits, uint64_t id,
               bool read_only_socket, int fd, CloseHook on_close);
    ~Connection() override;
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // Starts watching the socket; call once after construction.
    void attach();
    // Closes the socket and forgets pending output. Idempotent.
    void close();

    Session &session() { return session_; }
    uint64_t id() const { return id_; }

    // SessionIo
    void send(std::vector<uint8_t> packet) override;
    void submit(std::function<std::vector<uint8_t>()> job, bool high_priority) override;
    void start_keepalive() override;

private:
    static gboolean on_io(gpointer self);
    static gboolean on_keepalive_tick(gpointer self);
    bool read_input();      // false when the connection was closed
    void process_input();   // handles whole packets while under the in-flight limit
    void flush();
    void update_watch();
    void complete(std::vector<uint8_t> reply);

    Driver &driver_;
    WorkerPool &pool_;
    GMainContext *ctx_;
    ConnectionLimits limits_;
    uint64_t id_;
    int fd_;
    CloseHook on_close_;
    Session session_;

    GSource *source_ = nullptr;
    gpointer fd_tag_ = nullptr;
    // What the source watches now. GLib wakes the whole main context on every
    // g_source_modify_unix_fd, changed or not: a call would pay three.
    int watch_cond_ = G_IO_IN;
    GSource *keepalive_source_ = nullptr;
    bool closed_ = false;
    // The client stopped reading (a write failed): replies are dropped, but
    // the calls it sent before going are still carried out, as the packets
    // read before the failure show; the connection closes at end of input.
    bool output_gone_ = false;

    FrameReader rx_;
    std::deque<std::vector<uint8_t>> tx_;
    size_t tx_offset_ = 0;
    unsigned in_flight_ = 0;

    std::chrono::steady_clock::time_point last_rx_;
    unsigned pings_unanswered_ = 0;
};

// Runs `fn` on the thread iterating `ctx` (at once if that is the caller).
void post_to_loop(GMainContext *ctx, std::function<void()> fn);

}  // namespace virtsnap::rpc
