// connection.cc - socket I/O, framing and keepalive for one client.

#include "rpc/connection.hh"

#include "rpc/packet.hh"
#include "rpc/replies.hh"

#include "util/log.hh"

#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

#define LOG_MODULE "rpc.connection"

namespace virtsnap::rpc {

namespace {

constexpr size_t kReadChunk = 65536;  // libvirt's initial read buffer size
// A client that sends but does not read (a PING flood) stops being read from
// once this many packets wait for it; one that lets events pile up far beyond
// that is dropped rather than allowed to grow the server without bound.
constexpr size_t kOutputPauseReading = 256;
constexpr size_t kOutputDropClient = 65536;

gboolean dispatch_source(GSource *, GSourceFunc callback, gpointer data) { return callback(data); }
GSourceFuncs fd_source_funcs = {nullptr, nullptr, dispatch_source, nullptr, nullptr, nullptr};

}  // namespace

void post_to_loop(GMainContext *ctx, std::function<void()> fn) {
    auto *heap = new std::function<void()>(std::move(fn));
    g_main_context_invoke_full(
        ctx, G_PRIORITY_DEFAULT,
        [](gpointer p) -> gboolean {
            (*static_cast<std::function<void()> *>(p))();
            return G_SOURCE_REMOVE;
        },
        heap, [](gpointer p) { delete static_cast<std::function<void()> *>(p); });
}

Connection::Connection(Driver &driver, WorkerPool &pool, GMainContext *ctx, ConnectionLimits limits, uint64_t id,
                       bool read_only_socket, int fd, CloseHook on_close)
    : driver_(driver), pool_(pool), ctx_(ctx), limits_(limits), id_(id), fd_(fd), on_close_(std::move(on_close)),
      session_(driver, *this, id, read_only_socket), last_rx_(std::chrono::steady_clock::now()) {}

Connection::~Connection() {
    if (source_) {
        g_source_destroy(source_);
        g_source_unref(source_);
    }
    if (keepalive_source_) {
        g_source_destroy(keepalive_source_);
        g_source_unref(keepalive_source_);
    }
    if (fd_ >= 0) ::close(fd_);
}

void Connection::attach() {
    source_ = g_source_new(&fd_source_funcs, sizeof(GSource));
    fd_tag_ = g_source_add_unix_fd(source_, fd_, G_IO_IN);
    g_source_set_callback(source_, &Connection::on_io, this, nullptr);
    g_source_attach(source_, ctx_);
}

void Connection::close() {
    if (closed_) return;
    closed_ = true;
    VS_DEBUG("closing connection %llu", (unsigned long long)id_);
    if (session_.is_open()) driver_.connect_close(session_.client());
    if (source_) {
        g_source_destroy(source_);
        g_source_unref(source_);
        source_ = nullptr;
    }
    if (keepalive_source_) {
        g_source_destroy(keepalive_source_);
        g_source_unref(keepalive_source_);
        keepalive_source_ = nullptr;
    }
    ::close(fd_);
    fd_ = -1;
    // Input is left alone: close() may run while a packet from it is being handled.
    tx_.clear();
    // The hook drops the server's reference; keep this object alive until we return.
    auto self = shared_from_this();
    if (on_close_) on_close_(id_);
}

gboolean Connection::on_io(gpointer p) {
    auto *self = static_cast<Connection *>(p);
    auto keep = self->shared_from_this();
    GIOCondition cond = g_source_query_unix_fd(self->source_, self->fd_tag_);
    if (cond & G_IO_OUT) self->flush();
    if (self->closed_) return G_SOURCE_REMOVE;
    if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && !self->read_input()) return G_SOURCE_REMOVE;
    // Also after a flush: packets held back while output was full can go now.
    self->process_input();
    if (self->closed_) return G_SOURCE_REMOVE;
    self->update_watch();
    return G_SOURCE_CONTINUE;
}

bool Connection::read_input() {
    std::span<uint8_t> room = rx_.reserve(kReadChunk);
    ssize_t n = ::recv(fd_, room.data(), room.size(), 0);
    if (n < 0) {
        rx_.commit(0);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        VS_DEBUG("connection %llu: read failed: %s", (unsigned long long)id_, g_strerror(errno));
        close();
        return false;
    }
    rx_.commit(size_t(n));
    if (n == 0) {
        close();
        return false;
    }
    last_rx_ = std::chrono::steady_clock::now();
    pings_unanswered_ = 0;  // any packet from the client proves it is alive
    return true;
}

void Connection::process_input() {
    if (closed_) return;
    auto room = [this] { return !closed_ && in_flight_ < limits_.max_requests && tx_.size() < kOutputPauseReading; };
    auto st = rx_.drain(room, [this](std::span<const uint8_t> packet) { session_.handle_packet(packet); });
    if (!st && !closed_) {
        // A bad length means the stream cannot be resynchronised: drop this client only.
        VS_WARN("connection %llu: %s; closing it", (unsigned long long)id_, st.error().message().c_str());
        close();
    }
}

void Connection::update_watch() {
    if (closed_ || !source_) return;
    int cond = 0;
    // Stop reading while the client has its full quota of calls in flight.
    if (in_flight_ < limits_.max_requests && tx_.size() < kOutputPauseReading) cond |= G_IO_IN;
    if (!tx_.empty()) cond |= G_IO_OUT;
    if (cond == watch_cond_) return;
    watch_cond_ = cond;
    g_source_modify_unix_fd(source_, fd_tag_, GIOCondition(cond));
}

void Connection::send(std::vector<uint8_t> packet) {
    if (closed_ || output_gone_) return;
    if (tx_.size() >= kOutputDropClient) {
        VS_WARN("connection %llu: %zu packets unread; closing it", (unsigned long long)id_, tx_.size());
        close();
        return;
    }
    tx_.push_back(std::move(packet));
    flush();
    update_watch();
}

void Connection::flush() {
    while (!closed_ && !tx_.empty()) {
        const auto &front = tx_.front();
        ssize_t n = ::send(fd_, front.data() + tx_offset_, front.size() - tx_offset_, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            VS_DEBUG("connection %llu: write failed: %s; replies dropped until end of input",
                     (unsigned long long)id_, g_strerror(errno));
            output_gone_ = true;
            tx_.clear();
            tx_offset_ = 0;
            return;
        }
        tx_offset_ += size_t(n);
        if (tx_offset_ == front.size()) {
            tx_.pop_front();
            tx_offset_ = 0;
        }
    }
}

void Connection::submit(std::function<std::vector<uint8_t>()> job, bool high_priority) {
    in_flight_++;
    std::weak_ptr<Connection> weak = weak_from_this();
    GMainContext *ctx = ctx_;
    pool_.post(
        [weak, ctx, job = std::move(job)] {
            std::vector<uint8_t> reply = job();
            post_to_loop(ctx, [weak, reply = std::move(reply)]() mutable {
                if (auto c = weak.lock()) c->complete(std::move(reply));
            });
        },
        high_priority);
}

void Connection::complete(std::vector<uint8_t> reply) {
    if (in_flight_ > 0) in_flight_--;
    if (closed_) return;
    send(std::move(reply));
    // Packets left unread while at the in-flight limit can proceed now.
    process_input();
    update_watch();
}

void Connection::start_keepalive() {
    if (keepalive_source_ || closed_ || !limits_.keepalive_enabled()) return;
    last_rx_ = std::chrono::steady_clock::now();
    keepalive_source_ = g_timeout_source_new(guint(limits_.keepalive_interval.count()));
    g_source_set_callback(keepalive_source_, &Connection::on_keepalive_tick, this, nullptr);
    g_source_attach(keepalive_source_, ctx_);
}

gboolean Connection::on_keepalive_tick(gpointer p) {
    auto *self = static_cast<Connection *>(p);
    auto keep = self->shared_from_this();
    if (self->closed_) return G_SOURCE_REMOVE;
    auto idle = std::chrono::steady_clock::now() - self->last_rx_;
    // A tick can come a little early; 90% of the interval counts as idle.
    if (idle < self->limits_.keepalive_interval * 9 / 10) return G_SOURCE_CONTINUE;
    if (self->pings_unanswered_ >= self->limits_.keepalive_count) {
        VS_WARN("connection %llu: no answer to %u keepalive pings; closing it", (unsigned long long)self->id_,
                self->pings_unanswered_);
        self->close();
        return G_SOURCE_REMOVE;
    }
    self->pings_unanswered_++;
    self->send(make_keepalive(kKeepalivePing));
    return G_SOURCE_CONTINUE;
}

}  // namespace virtsnap::rpc
