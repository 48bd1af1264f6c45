// agent.hh - the QEMU guest agent client (qemu-ga over a virtio-serial
// chardev; QEMU listens on a unix socket and we connect).
//
// Every command is preceded by guest-sync-delimited with a random id: the
// agent answers it after a 0xFF byte, and replies with any other id (late
// answers to commands that timed out) are skipped, so a reply always belongs
// to the command that asked. One command runs at a time; callers block with a
// timeout. Errors are libvirt's (qemu_agent.c, qemuDomainAgentAvailable):
//   no connection            VIR_ERR_AGENT_UNRESPONSIVE "QEMU guest agent is not connected"
//   no agent channel         VIR_ERR_ARGUMENT_UNSUPPORTED "QEMU guest agent is not configured"
//   no reply in time         VIR_ERR_AGENT_UNRESPONSIVE "Guest agent not available for now"
//   EOF during a command     VIR_ERR_AGENT_UNRESPONSIVE "Guest agent disappeared while executing command"
//   error reply              VIR_ERR_INTERNAL_ERROR "unable to execute QEMU agent command '<cmd>': <desc>"
#pragma once

#include "qemu/qvalue.hh"
#include "util/raii.hh"
#include "util/result.hh"

#include <glib.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu {

class EventThread;
class QmpChannel;
namespace qmpjson { struct Message; }

class Agent {
public:
    using Millis = std::chrono::milliseconds;
    struct Options {
        Millis timeout{5000};            // per command, as libvirt's default agent wait
        GMainContext *context = nullptr; // null: the agent runs its own thread
    };

    // Connects to the agent's chardev socket; failure is "not connected".
    [[nodiscard]] static Result<std::unique_ptr<Agent>> connect(const std::string &socket_path, Options options);
    [[nodiscard]] static Result<std::unique_ptr<Agent>> open(UniqueFd fd, Options options);
    ~Agent();
    Agent(const Agent &) = delete;
    Agent &operator=(const Agent &) = delete;

    // The errors callers report when there is no usable agent.
    static Error not_configured_error();
    static Error not_connected_error();

    bool connected() const;

    // guest-sync-delimited on its own (commands do it themselves).
    [[nodiscard]] Status sync(std::optional<Millis> timeout = std::nullopt);
    [[nodiscard]] Status ping();
    // guest-fsfreeze-freeze, or guest-fsfreeze-freeze-list for some mount
    // points; returns the number of frozen file systems.
    [[nodiscard]] Result<int64_t> fsfreeze_freeze(const std::vector<std::string> &mountpoints = {});
    [[nodiscard]] Result<int64_t> fsfreeze_thaw();
    // "thawed" or "frozen".
    [[nodiscard]] Result<std::string> fsfreeze_status();
    // guest-shutdown with mode "powerdown", "reboot" or "halt". qemu-ga ends
    // the guest without answering, so once the command is out a missing
    // reply or the channel closing means it was delivered (libvirt then waits
    // for QEMU's SHUTDOWN event); failing to sync first, or an error reply,
    // is an error.
    [[nodiscard]] Status shutdown(const std::string &mode, std::optional<Millis> timeout = std::nullopt);
    // Any command: sync, then the command; returns its "return" member.
    [[nodiscard]] Result<QValue> execute(std::string_view command, const QDict &args = {},
                                         std::optional<Millis> timeout = std::nullopt);

private:
    enum class Waiting { Nothing, Sync, Reply };

    explicit Agent(Options options);
    void start(UniqueFd fd);
    bool on_line(std::string_view line);
    void on_close();
    // The sync and the command, under cmd_mu_; `sent` tells whether the sync
    // succeeded and the command itself was sent.
    [[nodiscard]] Result<qmpjson::Message> command(std::string_view command, const QDict &args,
                                                   std::optional<Millis> timeout, bool &sent);
    // Sends one line and waits for the matching reply (caller holds cmd_mu_).
    [[nodiscard]] Result<qmpjson::Message> exchange(std::string line, Waiting what, int64_t sync_id, Millis timeout);

    Options options_;
    std::unique_ptr<EventThread> thread_;
    GMainContext *context_ = nullptr;
    std::unique_ptr<QmpChannel> channel_;

    std::mutex cmd_mu_;  // one command at a time
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool closed_ = false;
    Waiting waiting_ = Waiting::Nothing;
    int64_t sync_id_ = 0;
    std::unique_ptr<qmpjson::Message> reply_;
};

}  // namespace virtsnap::qemu
