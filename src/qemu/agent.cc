// agent.cc - guest agent client: sync with a delimiter, one command at a
// time, timeouts and libvirt's agent errors. JSON stays in monitor_json.cc.

#include "qemu/agent.hh"
#include "qemu/event_thread.hh"
#include "qemu/monitor_json.hh"
#include "qemu/qmp_channel.hh"

#define LOG_MODULE "qemu.agent"
#include "util/log.hh"

namespace virtsnap::qemu {

Agent::Agent(Options options) : options_(options) {}

Error Agent::not_configured_error() {
    return make_error(VIR_ERR_ARGUMENT_UNSUPPORTED, VIR_FROM_QEMU, "QEMU guest agent is not configured");
}

Error Agent::not_connected_error() {
    return make_error(VIR_ERR_AGENT_UNRESPONSIVE, VIR_FROM_QEMU, "QEMU guest agent is not connected");
}

Result<std::unique_ptr<Agent>> Agent::connect(const std::string &socket_path, Options options) {
    auto fd = QmpChannel::connect_unix(socket_path, "agent");
    if (!fd) {
        VS_DEBUG("agent connect failed: %s", fd.error().message().c_str());
        return fail(not_connected_error());
    }
    return open(std::move(fd).value(), options);
}

Result<std::unique_ptr<Agent>> Agent::open(UniqueFd fd, Options options) {
    std::unique_ptr<Agent> agent(new Agent(options));
    agent->start(std::move(fd));
    return agent;
}

void Agent::start(UniqueFd fd) {
    if (options_.context) {
        context_ = options_.context;
    } else {
        thread_ = std::make_unique<EventThread>();
        context_ = thread_->context();
    }
    channel_ = std::make_unique<QmpChannel>(
        std::move(fd), context_,
        QmpChannel::Callbacks{[this](std::string_view line) { return on_line(line); },
                              [this](const QmpChannel::Closed &) { on_close(); }});
}

Agent::~Agent() {
    if (channel_) channel_->shutdown();
    {
        std::lock_guard lock(mu_);
        closed_ = true;
        cv_.notify_all();
    }
    channel_.reset();
    thread_.reset();
}

bool Agent::connected() const {
    std::lock_guard lock(mu_);
    return !closed_;
}

bool Agent::on_line(std::string_view line) {
    // After guest-sync-delimited the agent sends 0xFF first; anything before
    // it is a leftover of an earlier, abandoned exchange.
    size_t ff = line.rfind('\xff');
    if (ff != std::string_view::npos) line.remove_prefix(ff + 1);
    if (line.empty()) return true;
    auto parsed = qmpjson::parse_message(line);
    if (!parsed) {
        VS_WARN("ignoring unparsable agent message: %s", parsed.error().detail.c_str());
        return true;
    }
    if (parsed->kind != qmpjson::Message::Kind::Reply) return true;
    std::lock_guard lock(mu_);
    switch (waiting_) {
    case Waiting::Nothing:
        VS_DEBUG("dropping unexpected agent reply: %.*s", int(line.size()), line.data());
        return true;
    case Waiting::Sync:
        if (!parsed->ok || parsed->ret.integer() != sync_id_) {
            VS_DEBUG("skipping agent reply while syncing: %.*s", int(line.size()), line.data());
            return true;
        }
        break;
    case Waiting::Reply: break;
    }
    reply_ = std::make_unique<qmpjson::Message>(std::move(parsed).value());
    waiting_ = Waiting::Nothing;
    cv_.notify_all();
    return true;
}

void Agent::on_close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
}

Result<qmpjson::Message> Agent::exchange(std::string line, Waiting what, int64_t sync_id, Millis timeout) {
    {
        std::lock_guard lock(mu_);
        if (closed_) return fail(not_connected_error());
        waiting_ = what;
        sync_id_ = sync_id;
        reply_.reset();
    }
    bool sent = channel_->send(std::move(line));
    std::unique_lock lock(mu_);
    if (!sent) {
        waiting_ = Waiting::Nothing;
        return fail(not_connected_error());
    }
    bool answered = cv_.wait_for(lock, timeout, [&] { return reply_ || closed_; });
    waiting_ = Waiting::Nothing;
    if (reply_) return std::move(*reply_);
    if (closed_)
        return fail(VIR_ERR_AGENT_UNRESPONSIVE, VIR_FROM_QEMU, "Guest agent disappeared while executing command");
    (void)answered;
    return fail(VIR_ERR_AGENT_UNRESPONSIVE, VIR_FROM_QEMU, "Guest agent not available for now");
}

Status Agent::sync(std::optional<Millis> timeout) {
    // A random id, so that a reply to an earlier sync can never match.
    int64_t id = int64_t(g_random_int_range(1, G_MAXINT32));
    // The leading 0xFF makes the agent drop any partial input it holds.
    std::string line = "\xff" + qmpjson::build_agent_command("guest-sync-delimited", QDict{{"id", QValue(id)}});
    VS_DEBUG("agent sync id %lld", static_cast<long long>(id));
    TRY(exchange(std::move(line), Waiting::Sync, id, timeout.value_or(options_.timeout)));
    return ok();
}

Result<qmpjson::Message> Agent::command(std::string_view command, const QDict &args,
                                        std::optional<Millis> timeout, bool &sent) {
    sent = false;
    if (g_main_context_is_owner(context_))
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "agent command issued from the agent thread");
    std::lock_guard serial(cmd_mu_);
    TRY(sync(timeout));
    std::string line = qmpjson::build_agent_command(command, args);
    VS_DEBUG("agent send: %s", line.c_str());
    // From here a timeout or EOF is about the command itself, not the sync.
    sent = true;
    return exchange(std::move(line), Waiting::Reply, 0, timeout.value_or(options_.timeout));
}

Result<QValue> Agent::execute(std::string_view command, const QDict &args, std::optional<Millis> timeout) {
    bool sent;
    qmpjson::Message reply = TRY(this->command(command, args, timeout, sent));
    if (!reply.ok) return fail(qmpjson::agent_command_error(command, reply));
    return reply.ret;
}

Status Agent::shutdown(const std::string &mode, std::optional<Millis> timeout) {
    bool sent;
    auto reply = command("guest-shutdown", QDict{{"mode", QValue(mode)}}, timeout, sent);
    if (!reply) {
        const Error &e = reply.error();
        bool delivered = sent && e.code == VIR_ERR_AGENT_UNRESPONSIVE &&
                         (e.detail == "Guest agent not available for now" ||
                          e.detail == "Guest agent disappeared while executing command");
        if (delivered) return ok();
        return fail(std::move(reply).error());
    }
    if (!reply->ok) return fail(qmpjson::agent_command_error("guest-shutdown", *reply));
    return ok();
}

Status Agent::ping() {
    TRY(execute("guest-ping"));
    return ok();
}

namespace {
Result<int64_t> count_reply(Result<QValue> r) {
    QValue v = TRY(std::move(r));
    auto n = v.integer();
    if (!n) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "malformed return value");
    return *n;
}
}  // namespace

Result<int64_t> Agent::fsfreeze_freeze(const std::vector<std::string> &mountpoints) {
    if (mountpoints.empty()) return count_reply(execute("guest-fsfreeze-freeze"));
    QList list;
    for (const auto &m : mountpoints) list.emplace_back(m);
    return count_reply(execute("guest-fsfreeze-freeze-list", QDict{{"mountpoints", QValue(std::move(list))}}));
}

Result<int64_t> Agent::fsfreeze_thaw() { return count_reply(execute("guest-fsfreeze-thaw")); }

Result<std::string> Agent::fsfreeze_status() {
    QValue v = TRY(execute("guest-fsfreeze-status"));
    if (!v.str()) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "malformed return value");
    return *v.str();
}

}  // namespace virtsnap::qemu
