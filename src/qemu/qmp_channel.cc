// qmp_channel.cc - socket I/O, line framing and SCM_RIGHTS fd passing for the
// QMP monitor and the guest agent.

#include "qemu/qmp_channel.hh"
#include "qemu/event_thread.hh"

#define LOG_MODULE "qemu.qmp_channel"
#include "util/log.hh"

#include <glib-unix.h>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>

namespace virtsnap::qemu {

bool LineBuffer::feed(std::string_view bytes, const std::function<bool(std::string_view)> &on_line) {
    size_t start = 0;
    while (start < bytes.size()) {
        size_t nl = bytes.find('\n', start);
        if (nl == std::string_view::npos) {
            buffer_.append(bytes.substr(start));
            return buffer_.size() <= max_line_;
        }
        std::string_view piece = bytes.substr(start, nl - start);
        start = nl + 1;
        std::string line;
        if (!buffer_.empty()) {
            line = std::move(buffer_);
            buffer_.clear();
            line.append(piece);
            piece = line;
        }
        if (piece.size() > max_line_) return false;
        if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
        if (piece.empty()) continue;
        if (!on_line(piece)) return true;
    }
    return true;
}

Result<UniqueFd> QmpChannel::connect_unix(const std::string &path, std::string_view what) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    std::string(what) + " socket path " + path + " too big for destination");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return fail(make_system_error(VIR_FROM_QEMU, errno, "failed to create socket"));
    int rc;
    do rc = ::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "failed to connect to " + std::string(what) +
                                                                " socket " + path));
    return fd;
}

QmpChannel::QmpChannel(UniqueFd fd, GMainContext *context, Callbacks callbacks)
    : context_(g_main_context_ref(context)), callbacks_(std::move(callbacks)), fd_(std::move(fd)) {
    int flags = ::fcntl(fd_.get(), F_GETFL);
    ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
    ::fcntl(fd_.get(), F_SETFD, FD_CLOEXEC);
    std::lock_guard lock(mu_);
    read_source_ = g_unix_fd_source_new(fd_.get(), GIOCondition(G_IO_IN | G_IO_HUP | G_IO_ERR));
    g_source_set_callback(read_source_, G_SOURCE_FUNC(on_readable), this, nullptr);
    g_source_attach(read_source_, context_);
}

QmpChannel::~QmpChannel() {
    shutdown();
    g_main_context_unref(context_);
}

bool QmpChannel::closed() const {
    std::lock_guard lock(mu_);
    return closed_;
}

void QmpChannel::close_locked_sources() {
    for (GSource **s : {&read_source_, &write_source_}) {
        if (*s) {
            g_source_destroy(*s);
            g_source_unref(*s);
            *s = nullptr;
        }
    }
}

void QmpChannel::shutdown() {
    invoke_sync(context_, [this] {
        std::lock_guard lock(mu_);
        closed_ = true;
        close_reported_ = true;  // an explicit shutdown is not reported back
        close_locked_sources();
        queue_.clear();
        fd_.reset();
    });
}

bool QmpChannel::send(std::string data, int pass_fd) {
    Outgoing out;
    out.data = std::move(data);
    if (pass_fd >= 0) {
        out.fd.reset(::fcntl(pass_fd, F_DUPFD_CLOEXEC, 0));
        if (!out.fd.valid()) return false;
    }
    std::lock_guard lock(mu_);
    if (closed_) return false;
    queue_.push_back(std::move(out));
    if (!write_source_) {
        write_source_ = g_unix_fd_source_new(fd_.get(), G_IO_OUT);
        g_source_set_callback(write_source_, G_SOURCE_FUNC(on_writable), this, nullptr);
        // Attaching from another thread wakes the context up.
        g_source_attach(write_source_, context_);
    }
    return true;
}

void QmpChannel::report_close(const Closed &why) {
    {
        std::lock_guard lock(mu_);
        if (close_reported_) return;
        close_reported_ = true;
        closed_ = true;
        close_locked_sources();
        queue_.clear();
        fd_.reset();
    }
    if (callbacks_.on_close) callbacks_.on_close(why);
}

gboolean QmpChannel::on_writable(gint, GIOCondition, gpointer opaque) {
    auto *self = static_cast<QmpChannel *>(opaque);
    Closed failure;
    {
        std::lock_guard lock(self->mu_);
        while (!self->queue_.empty()) {
            Outgoing &out = self->queue_.front();
            iovec iov{out.data.data() + out.offset, out.data.size() - out.offset};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
            if (out.fd.valid()) {
                msg.msg_control = control;
                msg.msg_controllen = sizeof(control);
                cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
                cmsg->cmsg_level = SOL_SOCKET;
                cmsg->cmsg_type = SCM_RIGHTS;
                cmsg->cmsg_len = CMSG_LEN(sizeof(int));
                int fd = out.fd.get();
                std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
            }
            ssize_t n = ::sendmsg(self->fd_.get(), &msg, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) return G_SOURCE_CONTINUE;
                failure.sys_errno = errno;
                break;
            }
            out.fd.reset();  // passed along with the first byte
            out.offset += size_t(n);
            if (out.offset == out.data.size()) self->queue_.pop_front();
        }
        if (failure.sys_errno == 0) {
            g_source_unref(self->write_source_);
            self->write_source_ = nullptr;
            return G_SOURCE_REMOVE;
        }
    }
    VS_DEBUG("write failed: %s", g_strerror(failure.sys_errno));
    self->report_close(failure);
    return G_SOURCE_REMOVE;
}

gboolean QmpChannel::on_readable(gint fd, GIOCondition cond, gpointer opaque) {
    auto *self = static_cast<QmpChannel *>(opaque);
    char buf[65536];
    bool got_data = false;
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            self->report_close(Closed{false, errno});
            return G_SOURCE_REMOVE;
        }
        if (n == 0) {
            self->report_close(Closed{true, 0});
            return G_SOURCE_REMOVE;
        }
        got_data = true;
        bool stopped = false;
        bool fits = self->lines_.feed(std::string_view(buf, size_t(n)), [&](std::string_view line) {
            if (!self->callbacks_.on_line(line) || self->closed()) {
                stopped = true;
                return false;
            }
            return true;
        });
        if (stopped) return G_SOURCE_REMOVE;
        if (!fits) {
            VS_ERROR("line from peer exceeds %zu bytes", kMaxLine);
            self->report_close(Closed{false, EMSGSIZE});
            return G_SOURCE_REMOVE;
        }
        if (size_t(n) < sizeof(buf)) break;
    }
    // A hangup with data pending is handled on the next round, after the data.
    if (!got_data && (cond & (G_IO_HUP | G_IO_ERR))) {
        self->report_close(Closed{true, 0});
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

}  // namespace virtsnap::qemu
