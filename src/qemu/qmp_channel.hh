// qmp_channel.hh - a line-framed unix stream socket driven by a GMainContext:
// what the QMP monitor and the guest agent talk over.
//
// Reads and writes happen on the context's thread only. send() may be called
// from any thread: it queues the bytes (and a file descriptor to pass with
// SCM_RIGHTS) and wakes the context. Received bytes are split at '\n' (a
// trailing '\r' is dropped) and handed over one line at a time; end of file or
// an I/O error closes the channel and is reported once.
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <glib.h>

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace virtsnap::qemu {

// Splits a byte stream into lines; kept apart from the socket so the fuzzer
// and tests can drive it directly.
class LineBuffer {
public:
    explicit LineBuffer(size_t max_line) : max_line_(max_line) {}
    // Appends bytes and calls `on_line` for every complete line. Returns false
    // when a line grows beyond the limit (the stream is then unusable).
    bool feed(std::string_view bytes, const std::function<bool(std::string_view)> &on_line);

private:
    std::string buffer_;
    size_t max_line_;
};

class QmpChannel {
public:
    struct Closed {
        bool eof = false;  // orderly end of file
        int sys_errno = 0; // else the errno of the failed read/write
    };
    struct Callbacks {
        // Returning false stops delivery (the owner shut the channel down).
        std::function<bool(std::string_view line)> on_line;
        std::function<void(const Closed &)> on_close;
    };

    // The largest line accepted (query-qmp-schema of QEMU 10 is ~300 KiB).
    static constexpr size_t kMaxLine = 32 * 1024 * 1024;

    // Connects to a unix stream socket (monitor or agent); `what` names it in errors.
    [[nodiscard]] static Result<UniqueFd> connect_unix(const std::string &path, std::string_view what);

    // Starts reading `fd` on `context`.
    QmpChannel(UniqueFd fd, GMainContext *context, Callbacks callbacks);
    // Shuts down (synchronously, see shutdown()).
    ~QmpChannel();
    QmpChannel(const QmpChannel &) = delete;
    QmpChannel &operator=(const QmpChannel &) = delete;

    // Queues bytes; `pass_fd` (when >= 0) is duplicated now and sent with the
    // first byte. Returns false when the channel is already closed.
    bool send(std::string data, int pass_fd = -1);

    // Detaches from the context and closes the socket. Once it returns no
    // callback runs any more. Safe from any thread, including callbacks.
    void shutdown();

    bool closed() const;

private:
    struct Outgoing {
        std::string data;
        size_t offset = 0;
        UniqueFd fd;
    };

    static gboolean on_readable(gint fd, GIOCondition cond, gpointer self);
    static gboolean on_writable(gint fd, GIOCondition cond, gpointer self);
    void close_locked_sources();
    void report_close(const Closed &why);

    GMainContext *context_;
    Callbacks callbacks_;
    LineBuffer lines_{kMaxLine};

    mutable std::mutex mu_;
    UniqueFd fd_;
    GSource *read_source_ = nullptr;
    GSource *write_source_ = nullptr;
    std::deque<Outgoing> queue_;
    bool closed_ = false;
    bool close_reported_ = false;
};

}  // namespace virtsnap::qemu
