// monitor.cc - the QMP monitor client: connection, greeting, id-matched
// replies, event dispatch, EOF and timeouts, and the typed calls.
//
// JSON stays in monitor_json.cc; this file moves QValues and typed structs.

#include "qemu/monitor.hh"
#include "qemu/capabilities.hh"
#include "qemu/event_thread.hh"
#include "qemu/monitor_json.hh"
#include "qemu/qmp_channel.hh"

#define LOG_MODULE "qemu.monitor"
#include "util/log.hh"

#include <algorithm>

namespace virtsnap::qemu {

struct Monitor::Pending {
    std::string command;
    bool done = false;
    std::optional<qmpjson::Message> reply;
};

struct Monitor::Subscriber {
    std::string event;
    EventHandler handler;
};

Monitor::Monitor(Options options) : options_(std::move(options)) {}

Result<std::unique_ptr<Monitor>> Monitor::connect(const std::string &socket_path, Options options) {
    UniqueFd fd = TRY(QmpChannel::connect_unix(socket_path, "monitor"));
    return open(std::move(fd), std::move(options));
}

Result<std::unique_ptr<Monitor>> Monitor::open(UniqueFd fd, Options options) {
    std::unique_ptr<Monitor> mon(new Monitor(std::move(options)));
    TRY(mon->start(std::move(fd)));
    return mon;
}

Status Monitor::start(UniqueFd fd) {
    if (options_.context) {
        context_ = options_.context;
    } else {
        thread_ = std::make_unique<EventThread>();
        context_ = thread_->context();
    }
    channel_ = std::make_unique<QmpChannel>(
        std::move(fd), context_,
        QmpChannel::Callbacks{[this](std::string_view line) { return on_line(line); },
                              [this](const QmpChannel::Closed &c) { on_close(c.eof, c.sys_errno); }});

    // QEMU accepts commands only after its greeting; waiting for it also
    // tells a live monitor from a stale socket.
    {
        std::unique_lock lock(mu_);
        bool ready = cv_.wait_for(lock, options_.greeting_timeout, [&] { return got_greeting_ || closed_; });
        if (closed_) return fail(eof_error());
        if (!ready)
            return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU,
                        "QEMU monitor did not send its greeting within " +
                            std::to_string(options_.greeting_timeout.count()) + " ms");
    }
    VS_DEBUG("QMP greeting: QEMU %d.%d.%d %s", greeting_.major, greeting_.minor, greeting_.micro,
             greeting_.package.c_str());
    return qmp_capabilities();
}

Monitor::~Monitor() {
    // After shutdown no channel callback runs, so `this` is no longer used.
    if (channel_) channel_->shutdown();
    {
        std::lock_guard lock(mu_);
        closed_ = true;
        if (!close_error_)
            close_error_ = make_error(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU, "QEMU monitor was closed");
        for (auto &[id, p] : pending_) p->done = true;
        cv_.notify_all();
    }
    channel_.reset();
    thread_.reset();
}

bool Monitor::closed() const {
    std::lock_guard lock(mu_);
    return closed_;
}

void Monitor::set_caps(std::shared_ptr<const QemuCaps> caps) {
    std::lock_guard lock(mu_);
    caps_ = std::move(caps);
}

std::shared_ptr<const QemuCaps> Monitor::caps() const {
    std::lock_guard lock(mu_);
    return caps_;
}

Status Monitor::require_command(std::string_view command) const {
    auto c = caps();
    if (!c || c->has_command(std::string(command))) return ok();
    return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                "QEMU binary '" + c->binary + "' does not support the '" + std::string(command) + "' command");
}

Error Monitor::eof_error() const {
    return make_error(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                      "End of file from qemu monitor (vm='" + options_.vm_name + "')");
}

// ---- events ----

Monitor::SubscriptionId Monitor::subscribe(std::string event, EventHandler handler) {
    std::lock_guard lock(sub_mu_);
    SubscriptionId id = ++next_sub_;
    subscribers_[id] = std::make_shared<Subscriber>(Subscriber{std::move(event), std::move(handler)});
    return id;
}

void Monitor::unsubscribe(SubscriptionId id) {
    // Done on the monitor thread so that a handler running right now finishes
    // before we return (the caller may free what the handler uses).
    invoke_sync(context_, [&] {
        std::lock_guard lock(sub_mu_);
        subscribers_.erase(id);
    });
}

void Monitor::set_eof_handler(std::function<void(const Error &)> handler) {
    std::lock_guard lock(mu_);
    eof_handler_ = std::move(handler);
}

void Monitor::on_event(const QmpEvent &event) {
    std::vector<std::pair<SubscriptionId, std::shared_ptr<Subscriber>>> targets;
    {
        std::lock_guard lock(sub_mu_);
        for (const auto &[id, s] : subscribers_)
            if (s->event.empty() || s->event == event.name) targets.emplace_back(id, s);
    }
    for (const auto &[id, s] : targets) {
        {
            // A handler may have unsubscribed another one meanwhile.
            std::lock_guard lock(sub_mu_);
            if (!subscribers_.count(id)) continue;
        }
        s->handler(event);
    }
}

// ---- I/O callbacks (monitor thread) ----

bool Monitor::on_line(std::string_view line) {
    auto parsed = qmpjson::parse_message(line);
    if (!parsed) {
        // Garbage on the monitor is QEMU's bug, not a reason to drop the VM.
        VS_WARN("ignoring unparsable QMP message: %s", parsed.error().detail.c_str());
        return true;
    }
    qmpjson::Message msg = std::move(parsed).value();
    switch (msg.kind) {
    case qmpjson::Message::Kind::Greeting: {
        std::lock_guard lock(mu_);
        greeting_ = msg.greeting;
        got_greeting_ = true;
        cv_.notify_all();
        break;
    }
    case qmpjson::Message::Kind::Event:
        VS_DEBUG("QMP event: %.*s", int(line.size()), line.data());
        on_event(msg.event);
        break;
    case qmpjson::Message::Kind::Reply: on_reply(std::move(msg), line); break;
    }
    return true;
}

void Monitor::on_reply(qmpjson::Message &&msg, std::string_view line) {
    VS_DEBUG("QMP reply: %.*s", int(line.size()), line.data());
    std::lock_guard lock(mu_);
    if (!msg.id) {
        VS_WARN("QMP reply without id: %.*s", int(line.size()), line.data());
        return;
    }
    auto it = pending_.find(*msg.id);
    if (it == pending_.end()) {
        // The caller gave up (timeout); QEMU answered late.
        VS_INFO("dropping late reply %s", msg.id->c_str());
        return;
    }
    it->second->reply = std::move(msg);
    it->second->done = true;
    pending_.erase(it);
    cv_.notify_all();
}

void Monitor::on_close(bool eof, int sys_errno) {
    std::function<void(const Error &)> handler;
    Error err = eof ? eof_error() : make_system_error(VIR_FROM_QEMU, sys_errno, "Unable to read from monitor");
    {
        std::lock_guard lock(mu_);
        closed_ = true;
        close_error_ = err;
        for (auto &[id, p] : pending_) p->done = true;
        pending_.clear();
        cv_.notify_all();
        handler = eof_handler_;
    }
    VS_DEBUG("monitor closed: %s", err.message().c_str());
    if (handler) handler(err);
}

// ---- calls ----

Result<QValue> Monitor::call(std::string_view command, const QDict &args, int fd, std::optional<Millis> timeout) {
    if (g_main_context_is_owner(context_))
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "QEMU command '" + std::string(command) + "' issued from the monitor thread");
    auto pending = std::make_shared<Pending>();
    pending->command = std::string(command);
    std::string id;
    {
        std::lock_guard lock(mu_);
        if (closed_) return fail(close_error_.value_or(eof_error()));
        id = "virtsnap-" + std::to_string(++next_id_);
        pending_[id] = pending;
    }
    std::string text = qmpjson::build_command(command, args, id);
    VS_DEBUG("QMP send%s: %s", fd >= 0 ? " (with fd)" : "", text.c_str());
    text += "\r\n";
    bool queued = channel_->send(std::move(text), fd);

    std::unique_lock lock(mu_);
    if (!queued) {
        pending_.erase(id);
        return fail(close_error_.value_or(eof_error()));
    }
    Millis limit = timeout.value_or(options_.timeout);
    bool finished = cv_.wait_for(lock, limit, [&] { return pending->done; });
    if (!finished) {
        pending_.erase(id);
        return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU,
                    "no reply from QEMU to command '" + std::string(command) + "' within " +
                        std::to_string(limit.count()) + " ms");
    }
    if (!pending->reply) return fail(close_error_.value_or(eof_error()));
    const qmpjson::Message &reply = *pending->reply;
    if (!reply.ok) {
        VS_DEBUG("unable to execute QEMU command %s: class=%s desc=%s", std::string(command).c_str(),
                 reply.error_class.c_str(), reply.error_desc.c_str());
        return fail(qmpjson::command_error(command, reply));
    }
    return reply.ret;
}

Result<QValue> Monitor::execute(std::string_view command, const QDict &args, std::optional<Millis> timeout) {
    return call(command, args, -1, timeout);
}

Result<QValue> Monitor::execute_with_fd(std::string_view command, const QDict &args, int fd,
                                        std::optional<Millis> timeout) {
    if (fd < 0)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                    "invalid file descriptor for QEMU command '" + std::string(command) + "'");
    return call(command, args, fd, timeout);
}

namespace {
Status done(Result<QValue> r) {
    if (!r) return fail(std::move(r).error());
    return ok();
}
QDict node_name_arg(const std::string &key, const std::string &value) { return QDict{{key, QValue(value)}}; }
}  // namespace

Status Monitor::qmp_capabilities() { return done(execute("qmp_capabilities")); }
Status Monitor::stop() { return done(execute("stop")); }
Status Monitor::cont() { return done(execute("cont")); }
Status Monitor::system_powerdown() { return done(execute("system_powerdown")); }
Status Monitor::system_reset() { return done(execute("system_reset")); }
Status Monitor::quit() { return done(execute("quit")); }

Result<StatusInfo> Monitor::query_status() {
    QValue r = TRY(execute("query-status"));
    return qmpjson::parse_status(r);
}

Result<std::vector<BlockInfo>> Monitor::query_block() {
    QValue r = TRY(execute("query-block"));
    return qmpjson::parse_block_info(r);
}

Result<std::vector<NamedBlockNode>> Monitor::query_named_block_nodes() {
    QValue r = TRY(execute("query-named-block-nodes", QDict{{"flat", QValue(true)}}));
    return qmpjson::parse_named_block_nodes(r);
}

Status Monitor::blockdev_add(const QDict &node) { return done(execute("blockdev-add", node)); }

Status Monitor::blockdev_del(const std::string &node_name) {
    return done(execute("blockdev-del", node_name_arg("node-name", node_name)));
}

Status Monitor::blockdev_create(const std::string &job_id, const QDict &options) {
    return done(execute("blockdev-create", QDict{{"job-id", QValue(job_id)}, {"options", QValue(options)}}));
}

Status Monitor::transaction(const Transaction &actions) {
    return done(execute("transaction", QDict{{"actions", QValue(actions.actions())}}));
}

Status Monitor::blockdev_reopen(const std::vector<QDict> &nodes) {
    TRY(require_command("blockdev-reopen"));
    QList list;
    for (const auto &n : nodes) list.emplace_back(n);
    return done(execute("blockdev-reopen", QDict{{"options", QValue(std::move(list))}}));
}

namespace {
// The standalone bitmap commands take the same data as their transaction actions.
QDict single_action_data(const Transaction &t) {
    const QValue *data = t.actions().front().get("data");
    return data && data->dict() ? *data->dict() : QDict{};
}
}  // namespace

Status Monitor::block_dirty_bitmap_add(const std::string &node, const std::string &name, bool persistent,
                                       bool disabled, std::optional<uint64_t> granularity) {
    Transaction t;
    t.bitmap_add(node, name, persistent, disabled, granularity);
    return done(execute("block-dirty-bitmap-add", single_action_data(t)));
}

Status Monitor::block_dirty_bitmap_remove(const std::string &node, const std::string &name) {
    Transaction t;
    t.bitmap_remove(node, name);
    return done(execute("block-dirty-bitmap-remove", single_action_data(t)));
}

Status Monitor::block_dirty_bitmap_clear(const std::string &node, const std::string &name) {
    Transaction t;
    t.bitmap_clear(node, name);
    return done(execute("block-dirty-bitmap-clear", single_action_data(t)));
}

Status Monitor::block_dirty_bitmap_enable(const std::string &node, const std::string &name) {
    Transaction t;
    t.bitmap_enable(node, name);
    return done(execute("block-dirty-bitmap-enable", single_action_data(t)));
}

Status Monitor::block_dirty_bitmap_disable(const std::string &node, const std::string &name) {
    Transaction t;
    t.bitmap_disable(node, name);
    return done(execute("block-dirty-bitmap-disable", single_action_data(t)));
}

Status Monitor::block_dirty_bitmap_merge(const std::string &node, const std::string &target,
                                         const std::vector<std::string> &sources) {
    Transaction t;
    t.bitmap_merge(node, target, sources);
    return done(execute("block-dirty-bitmap-merge", single_action_data(t)));
}

Status Monitor::block_commit(const BlockCommitArgs &args) {
    return done(execute("block-commit", qmpjson::args_block_commit(args)));
}

Status Monitor::block_stream(const BlockStreamArgs &args) {
    return done(execute("block-stream", qmpjson::args_block_stream(args)));
}

Status Monitor::blockdev_mirror(const BlockdevMirrorArgs &args) {
    return done(execute("blockdev-mirror", qmpjson::args_blockdev_mirror(args)));
}

Status Monitor::job_complete(const std::string &id) { return done(execute("job-complete", node_name_arg("id", id))); }
Status Monitor::job_cancel(const std::string &id) { return done(execute("job-cancel", node_name_arg("id", id))); }
Status Monitor::job_dismiss(const std::string &id) { return done(execute("job-dismiss", node_name_arg("id", id))); }
Status Monitor::job_finalize(const std::string &id) { return done(execute("job-finalize", node_name_arg("id", id))); }

Result<std::vector<JobInfo>> Monitor::query_jobs() {
    QValue r = TRY(execute("query-jobs"));
    return qmpjson::parse_jobs(r);
}

Status Monitor::snapshot_save(const SnapshotJobArgs &args) {
    TRY(require_command("snapshot-save"));
    return done(execute("snapshot-save", qmpjson::args_snapshot_job(args, true)));
}

Status Monitor::snapshot_load(const SnapshotJobArgs &args) {
    TRY(require_command("snapshot-load"));
    return done(execute("snapshot-load", qmpjson::args_snapshot_job(args, true)));
}

Status Monitor::snapshot_delete(const SnapshotJobArgs &args) {
    TRY(require_command("snapshot-delete"));
    return done(execute("snapshot-delete", qmpjson::args_snapshot_job(args, false)));
}

Status Monitor::migrate(const std::string &uri) { return done(execute("migrate", QDict{{"uri", QValue(uri)}})); }

Status Monitor::migrate_to_fd(int fd) {
    // The name libvirt uses for the same purpose.
    static const std::string kName = "migrate";
    TRY(getfd(fd, kName));
    Status st = migrate("fd:" + kName);
    if (!st) {
        // Keep the migrate error; QEMU keeps the fd until closed.
        Status closed = closefd(kName);
        if (!closed) VS_DEBUG("closefd after failed migrate: %s", closed.error().detail.c_str());
    }
    return st;
}

Status Monitor::migrate_incoming(const std::string &uri) {
    return done(execute("migrate-incoming", QDict{{"uri", QValue(uri)}}));
}

Status Monitor::migrate_set_capabilities(const std::vector<MigrationCapability> &caps) {
    if (auto probed = this->caps())
        for (const auto &c : caps)
            if (!probed->has_migration_capability(c.capability))
                return fail(VIR_ERR_OPERATION_UNSUPPORTED, VIR_FROM_QEMU,
                            "QEMU does not support migration capability '" + c.capability + "'");
    QList list;
    for (const auto &c : caps)
        list.emplace_back(QDict{{"capability", QValue(c.capability)}, {"state", QValue(c.state)}});
    return done(execute("migrate-set-capabilities", QDict{{"capabilities", QValue(std::move(list))}}));
}

Status Monitor::migrate_set_parameters(const QDict &params) {
    return done(execute("migrate-set-parameters", params));
}

Result<MigrationParameters> Monitor::query_migrate_parameters() {
    QValue r = TRY(execute("query-migrate-parameters"));
    return qmpjson::parse_migration_parameters(r);
}

Result<MigrationInfo> Monitor::query_migrate() {
    QValue r = TRY(execute("query-migrate"));
    return qmpjson::parse_migration_info(r);
}

Result<std::vector<MigrationCapability>> Monitor::query_migrate_capabilities() {
    QValue r = TRY(execute("query-migrate-capabilities"));
    return qmpjson::parse_migration_capabilities(r);
}

Status Monitor::migrate_cancel() { return done(execute("migrate_cancel")); }

Status Monitor::getfd(int fd, const std::string &name) {
    return done(execute_with_fd("getfd", QDict{{"fdname", QValue(name)}}, fd));
}

Status Monitor::closefd(const std::string &name) { return done(execute("closefd", QDict{{"fdname", QValue(name)}})); }

Result<AddFdInfo> Monitor::add_fd(int fd, std::optional<int64_t> fdset_id, std::optional<std::string> opaque) {
    QDict args;
    if (fdset_id) args.emplace_back("fdset-id", QValue(*fdset_id));
    if (opaque) args.emplace_back("opaque", QValue(*opaque));
    QValue r = TRY(execute_with_fd("add-fd", args, fd));
    return qmpjson::parse_add_fd(r);
}

Status Monitor::remove_fd(int64_t fdset_id, std::optional<int64_t> fd) {
    QDict args{{"fdset-id", QValue(fdset_id)}};
    if (fd) args.emplace_back("fd", QValue(*fd));
    return done(execute("remove-fd", args));
}

Status Monitor::nbd_server_start(const NbdServerAddress &addr) {
    return done(execute("nbd-server-start", qmpjson::args_nbd_server_start(addr)));
}

namespace {
bool has_block_export(const std::shared_ptr<const QemuCaps> &caps) {
    return caps && caps->has_command("block-export-add") && caps->has_command("block-export-del");
}
std::string nbd_export_id(const std::string &export_name) { return "libvirt-nbd-" + export_name; }
}  // namespace

Status Monitor::nbd_server_add(const std::string &node, const std::string &export_name, bool writable,
                               std::optional<std::string> bitmap) {
    if (has_block_export(caps())) {
        // Member order as libvirt's qemuBlockExportGetNBDProps.
        QDict args{{"type", QValue("nbd")},
                   {"id", QValue(nbd_export_id(export_name))},
                   {"node-name", QValue(node)},
                   {"writable", QValue(writable)},
                   {"name", QValue(export_name)}};
        if (bitmap) args.emplace_back("bitmaps", QValue(QList{QValue(*bitmap)}));
        return done(execute("block-export-add", args));
    }
    QDict args{{"device", QValue(node)}, {"name", QValue(export_name)}, {"writable", QValue(writable)}};
    if (bitmap) args.emplace_back("bitmap", QValue(*bitmap));
    return done(execute("nbd-server-add", args));
}

Status Monitor::nbd_server_remove(const std::string &export_name) {
    if (has_block_export(caps()))
        return done(execute("block-export-del", QDict{{"id", QValue(nbd_export_id(export_name))}}));
    return done(execute("nbd-server-remove", QDict{{"name", QValue(export_name)}}));
}

Status Monitor::nbd_server_stop() { return done(execute("nbd-server-stop")); }

Result<std::vector<std::string>> Monitor::query_commands() {
    QValue r = TRY(execute("query-commands"));
    return qmpjson::parse_commands(r);
}

Result<QValue> Monitor::query_qmp_schema() {
    QValue r = TRY(execute("query-qmp-schema"));
    if (!r.list()) return fail(qmpjson::unexpected_type_error("query-qmp-schema"));
    return r;
}

Result<std::vector<MachineInfo>> Monitor::query_machines() {
    QValue r = TRY(execute("query-machines"));
    return qmpjson::parse_machines(r);
}

Result<KvmInfo> Monitor::query_kvm() {
    QValue r = TRY(execute("query-kvm"));
    return qmpjson::parse_kvm(r);
}

Status Monitor::finish_job(JobWatch &watch, Millis timeout) {
    TRY(watch.wait_for({"concluded"}, timeout));
    auto jobs = TRY(query_jobs());
    std::optional<std::string> job_error;
    for (const auto &j : jobs)
        if (j.id == watch.job_id()) job_error = j.error;
    TRY(job_dismiss(watch.job_id()));
    if (job_error)
        return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                    "job '" + watch.job_id() + "' failed: " + *job_error);
    return ok();
}

// ---- JobWatch ----

JobWatch::JobWatch(Monitor &monitor, std::string job_id) : monitor_(monitor), job_id_(std::move(job_id)) {
    sub_ = monitor_.subscribe("JOB_STATUS_CHANGE", [this](const QmpEvent &ev) {
        auto change = parse_job_status_change(ev);
        if (!change || change->id != job_id_) return;
        std::lock_guard lock(mu_);
        unread_.push_back(change->status);
        history_.push_back(change->status);
        cv_.notify_all();
    });
}

JobWatch::~JobWatch() { monitor_.unsubscribe(sub_); }

std::vector<std::string> JobWatch::history() const {
    std::lock_guard lock(mu_);
    return history_;
}

Result<std::string> JobWatch::wait_for(const std::vector<std::string> &statuses, Millis timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mu_);
    for (;;) {
        while (!unread_.empty()) {
            std::string s = std::move(unread_.front());
            unread_.pop_front();
            if (std::find(statuses.begin(), statuses.end(), s) != statuses.end()) return s;
            if (s == "concluded" || s == "null")
                return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                            "job '" + job_id_ + "' ended (" + s + ") before reaching the expected state");
        }
        // Wake up now and then to notice a dead monitor.
        auto slice = std::min(deadline, std::chrono::steady_clock::now() + Millis(100));
        cv_.wait_until(lock, slice);
        if (!unread_.empty()) continue;
        if (monitor_.closed())
            return fail(VIR_ERR_OPERATION_FAILED, VIR_FROM_QEMU,
                        "QEMU monitor closed while waiting for job '" + job_id_ + "'");
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(VIR_ERR_OPERATION_TIMEOUT, VIR_FROM_QEMU,
                        "job '" + job_id_ + "' did not reach the expected state within " +
                            std::to_string(timeout.count()) + " ms");
    }
}

}  // namespace virtsnap::qemu
