// monitor.hh - the QMP monitor client: typed, synchronous calls for RPC worker
// threads over an asynchronous connection driven by a GMainContext.
//
// Threading: socket I/O and event dispatch run on the monitor's context (its
// own EventThread unless Options::context is given). Any thread except that
// one may call commands; each call gets an id, commands are pipelined and
// replies matched by id, and the caller blocks until its reply, EOF or its
// timeout. Events reach subscribers on the monitor thread, in arrival order;
// handlers must not issue monitor commands themselves (hand off to a worker).
//
// Errors are libvirt's: a QMP error reply is VIR_ERR_INTERNAL_ERROR "unable to
// execute QEMU command '<cmd>': <desc>"; after EOF every pending and later
// call fails with VIR_ERR_INTERNAL_ERROR "End of file from qemu monitor
// (vm='<name>')"; a reply that does not come in time is VIR_ERR_OPERATION_TIMEOUT.
//
// Re-attach after a daemon restart is connect() on the same socket: QEMU greets
// every new connection, and qmp_capabilities is negotiated again.
//
// Capabilities. Once set_caps() gave it the probed capabilities of its QEMU,
// the calls for optional features check them before sending anything: a
// command the schema lacks (snapshot-save/load/delete, blockdev-reopen) or a
// migration capability QEMU does not know is VIR_ERR_OPERATION_UNSUPPORTED at
// once, and NBD exports use block-export-add/del where the schema has them
// (nbd-server-add/remove are deprecated since QEMU 5.2). Without caps (tests,
// the prober itself) every command is sent and QEMU decides.
#pragma once

#include "qemu/monitor_types.hh"
#include "qemu/qvalue.hh"
#include "util/raii.hh"
#include "util/result.hh"

#include <glib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace virtsnap::qemu {

class EventThread;
class QmpChannel;
class JobWatch;
struct QemuCaps;

namespace qmpjson { struct Message; }

using Millis = std::chrono::milliseconds;

class Monitor {
public:
    struct Options {
        std::string vm_name;          // for libvirt's "(vm='...')" in EOF errors
        Millis timeout{30000};        // default per-command timeout
        Millis greeting_timeout{30000};
        GMainContext *context = nullptr;  // null: the monitor runs its own thread
    };

    // Connects to QEMU's QMP unix socket, waits for the greeting and leaves
    // capabilities negotiation mode.
    [[nodiscard]] static Result<std::unique_ptr<Monitor>> connect(const std::string &socket_path,
                                                                  Options options);
    // The same over an already connected socket (socketpair, inherited fd).
    [[nodiscard]] static Result<std::unique_ptr<Monitor>> open(UniqueFd fd, Options options);

    ~Monitor();
    Monitor(const Monitor &) = delete;
    Monitor &operator=(const Monitor &) = delete;

    const QmpGreeting &greeting() const { return greeting_; }

    // The probed capabilities of this QEMU (null: unknown, nothing is gated).
    void set_caps(std::shared_ptr<const QemuCaps> caps);
    std::shared_ptr<const QemuCaps> caps() const;
    // OPERATION_UNSUPPORTED when the probed schema lacks `command`; ok when
    // it has it or nothing was probed. For callers that must decide before
    // they change anything (a snapshot that would pause the guest first).
    [[nodiscard]] Status require_command(std::string_view command) const;
    // True after EOF or an I/O error.
    bool closed() const;

    // ---- events ----
    using EventHandler = std::function<void(const QmpEvent &)>;
    using SubscriptionId = uint64_t;
    // `event` is a QMP event name, or "" for every event.
    SubscriptionId subscribe(std::string event, EventHandler handler);
    // Once it returns the handler is not running and will not be called.
    void unsubscribe(SubscriptionId id);
    // Called once, on the monitor thread, when QEMU closes the monitor (crash
    // detection); `error` is what pending calls got.
    void set_eof_handler(std::function<void(const Error &error)> handler);

    // ---- generic calls ----
    // Runs a command and returns its "return" member.
    [[nodiscard]] Result<QValue> execute(std::string_view command, const QDict &args = {},
                                         std::optional<Millis> timeout = std::nullopt);
    // The same, passing `fd` with SCM_RIGHTS along with the command.
    [[nodiscard]] Result<QValue> execute_with_fd(std::string_view command, const QDict &args, int fd,
                                                 std::optional<Millis> timeout = std::nullopt);

    // ---- typed calls ----
    [[nodiscard]] Status qmp_capabilities();
    [[nodiscard]] Status stop();
    [[nodiscard]] Status cont();
    [[nodiscard]] Status system_powerdown();
    [[nodiscard]] Status system_reset();
    [[nodiscard]] Status quit();
    [[nodiscard]] Result<StatusInfo> query_status();
    [[nodiscard]] Result<std::vector<BlockInfo>> query_block();
    [[nodiscard]] Result<std::vector<NamedBlockNode>> query_named_block_nodes();

    // blockdev-add takes the node description the block-graph code builds.
    [[nodiscard]] Status blockdev_add(const QDict &node);
    [[nodiscard]] Status blockdev_del(const std::string &node_name);
    // blockdev-create starts job `job_id`; see JobWatch and finish_job().
    [[nodiscard]] Status blockdev_create(const std::string &job_id, const QDict &options);
    [[nodiscard]] Status transaction(const Transaction &actions);
    // blockdev-reopen (QEMU >= 6.1): each entry is a node's full new options.
    [[nodiscard]] Status blockdev_reopen(const std::vector<QDict> &nodes);

    [[nodiscard]] Status block_dirty_bitmap_add(const std::string &node, const std::string &name, bool persistent,
                                                bool disabled = false,
                                                std::optional<uint64_t> granularity = std::nullopt);
    [[nodiscard]] Status block_dirty_bitmap_remove(const std::string &node, const std::string &name);
    [[nodiscard]] Status block_dirty_bitmap_clear(const std::string &node, const std::string &name);
    [[nodiscard]] Status block_dirty_bitmap_enable(const std::string &node, const std::string &name);
    [[nodiscard]] Status block_dirty_bitmap_disable(const std::string &node, const std::string &name);
    [[nodiscard]] Status block_dirty_bitmap_merge(const std::string &node, const std::string &target,
                                                  const std::vector<std::string> &sources);

    [[nodiscard]] Status block_commit(const BlockCommitArgs &args);
    [[nodiscard]] Status block_stream(const BlockStreamArgs &args);
    [[nodiscard]] Status blockdev_mirror(const BlockdevMirrorArgs &args);
    [[nodiscard]] Status job_complete(const std::string &id);
    [[nodiscard]] Status job_cancel(const std::string &id);
    [[nodiscard]] Status job_dismiss(const std::string &id);
    [[nodiscard]] Status job_finalize(const std::string &id);
    [[nodiscard]] Result<std::vector<JobInfo>> query_jobs();

    // snapshot-save/load/delete (QEMU >= 6.0): each starts a job; gated on the schema.
    [[nodiscard]] Status snapshot_save(const SnapshotJobArgs &args);
    [[nodiscard]] Status snapshot_load(const SnapshotJobArgs &args);
    [[nodiscard]] Status snapshot_delete(const SnapshotJobArgs &args);

    // Migration. `uri` is passed through ("exec:...", "file:...", "unix:...", "fd:name").
    [[nodiscard]] Status migrate(const std::string &uri);
    // getfd over SCM_RIGHTS as "migrate", then migrate to "fd:migrate".
    [[nodiscard]] Status migrate_to_fd(int fd);
    [[nodiscard]] Status migrate_incoming(const std::string &uri);
    // Gated on the probed migration capabilities.
    [[nodiscard]] Status migrate_set_capabilities(const std::vector<MigrationCapability> &caps);
    [[nodiscard]] Status migrate_set_parameters(const QDict &params);
    [[nodiscard]] Result<MigrationParameters> query_migrate_parameters();
    [[nodiscard]] Result<MigrationInfo> query_migrate();
    [[nodiscard]] Result<std::vector<MigrationCapability>> query_migrate_capabilities();
    [[nodiscard]] Status migrate_cancel();

    // File descriptors.
    [[nodiscard]] Status getfd(int fd, const std::string &name);
    [[nodiscard]] Status closefd(const std::string &name);
    [[nodiscard]] Result<AddFdInfo> add_fd(int fd, std::optional<int64_t> fdset_id = std::nullopt,
                                           std::optional<std::string> opaque = std::nullopt);
    [[nodiscard]] Status remove_fd(int64_t fdset_id, std::optional<int64_t> fd = std::nullopt);

    // NBD: nbd-server-start/stop for the server; an export is added with
    // block-export-add (id "libvirt-nbd-<export name>") and removed with
    // block-export-del when the probed schema has them, else with the
    // deprecated nbd-server-add/remove.
    [[nodiscard]] Status nbd_server_start(const NbdServerAddress &addr);
    [[nodiscard]] Status nbd_server_add(const std::string &node, const std::string &export_name, bool writable,
                                        std::optional<std::string> bitmap = std::nullopt);
    [[nodiscard]] Status nbd_server_remove(const std::string &export_name);
    [[nodiscard]] Status nbd_server_stop();

    // Introspection (capabilities.cc).
    [[nodiscard]] Result<std::vector<std::string>> query_commands();
    [[nodiscard]] Result<QValue> query_qmp_schema();
    [[nodiscard]] Result<std::vector<MachineInfo>> query_machines();
    [[nodiscard]] Result<KvmInfo> query_kvm();

    // ---- jobs ----
    // Waits for `watch`'s job to conclude, reads its error from query-jobs and
    // dismisses it. A job error is VIR_ERR_OPERATION_FAILED with QEMU's text.
    [[nodiscard]] Status finish_job(JobWatch &watch, Millis timeout);

    Millis default_timeout() const { return options_.timeout; }

private:
    struct Pending;
    struct Subscriber;

    explicit Monitor(Options options);
    [[nodiscard]] Status start(UniqueFd fd);
    [[nodiscard]] Result<QValue> call(std::string_view command, const QDict &args, int fd,
                                      std::optional<Millis> timeout);
    bool on_line(std::string_view line);
    void on_reply(qmpjson::Message &&msg, std::string_view line);
    void on_event(const QmpEvent &event);
    void on_close(bool eof, int sys_errno);
    Error eof_error() const;

    Options options_;
    std::unique_ptr<EventThread> thread_;
    GMainContext *context_ = nullptr;
    std::unique_ptr<QmpChannel> channel_;
    QmpGreeting greeting_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::shared_ptr<const QemuCaps> caps_;
    bool got_greeting_ = false;
    bool closed_ = false;
    std::optional<Error> close_error_;
    uint64_t next_id_ = 0;
    std::map<std::string, std::shared_ptr<Pending>> pending_;
    std::function<void(const Error &)> eof_handler_;

    std::mutex sub_mu_;
    uint64_t next_sub_ = 0;
    std::map<SubscriptionId, std::shared_ptr<Subscriber>> subscribers_;
};

// Follows one job through JOB_STATUS_CHANGE events. Create it before the
// command that starts the job, so that no transition is missed.
class JobWatch {
public:
    JobWatch(Monitor &monitor, std::string job_id);
    ~JobWatch();
    JobWatch(const JobWatch &) = delete;
    JobWatch &operator=(const JobWatch &) = delete;

    const std::string &job_id() const { return job_id_; }
    // Waits until the job reaches one of `statuses` and returns it. A job that
    // ends ("concluded"/"null") first, a timeout or EOF are errors.
    [[nodiscard]] Result<std::string> wait_for(const std::vector<std::string> &statuses, Millis timeout);
    // Every status seen so far, in order.
    std::vector<std::string> history() const;

private:
    Monitor &monitor_;
    std::string job_id_;
    Monitor::SubscriptionId sub_ = 0;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> unread_;
    std::vector<std::string> history_;
};

// Typed views of event data; malformed data is an error.
[[nodiscard]] Result<JobStatusChangeEvent> parse_job_status_change(const QmpEvent &event);
[[nodiscard]] Result<BlockJobEvent> parse_block_job_event(const QmpEvent &event);
[[nodiscard]] Result<MigrationEvent> parse_migration_event(const QmpEvent &event);
[[nodiscard]] Result<ShutdownEvent> parse_shutdown_event(const QmpEvent &event);
[[nodiscard]] Result<DeviceDeletedEvent> parse_device_deleted_event(const QmpEvent &event);

}  // namespace virtsnap::qemu
