// domain_process.hh - one running QEMU of a domain: start, re-attach after a
// daemon restart, pause/resume, shutdown/reboot, destroy, and crash detection,
// with libvirt's states, reasons and lifecycle events.
//
// QEMU is spawned in its own session with no parent-death signal and its
// output appended to DIR/log/qemu/<name>.log, so killing the daemon never
// kills a guest. A runtime status file (domain_status.hh) is rewritten
// atomically on every state change; a restarted daemon calls reattach() with
// it to find the QEMU again, its monitor, agent and block graph.
//
// States (libvirt's virDomainState / reason):
//
//   start() ─► PAUSED/starting up ──cont──► RUNNING/booted ◄──resume()── PAUSED/user
//                │  (status written here)        │  └──────suspend()──────►  │
//                └─ paused start ─► PAUSED/user  │                           │
//                                                ▼ guest poweroff (SHUTDOWN)
//                                       SHUTDOWN/unknown ─SIGTERM─► SHUTOFF/shutdown
//   any active state ── destroy() ──► SHUTOFF/destroyed (or the reason given to stop())
//   any active state ── monitor EOF without SHUTDOWN ──► SHUTOFF/crashed  (event STOPPED_FAILED)
//
// Threading. Operations may be called from any thread except the callback
// threads, and are serialised by the caller's domain job (DomainObj::job);
// state() and the accessors are safe at any time. Lifecycle notifications
// reach the owner's handler on the monitor thread (STOP, RESUME, SHUTDOWN,
// RESET), on this object's worker thread (process exit: crash or shutdown),
// or on the thread of the operation that caused them (start, destroy/stop).
// They are delivered one at a time, never under an internal lock; a handler
// may read state() but must not call monitor commands or operations (hand
// them to a worker). The handler must outlive the DomainProcess.
#pragma once

#include "conf/domain_def.hh"
#include "qemu/block_graph.hh"
#include "qemu/command_line.hh"
#include "qemu/domain_status.hh"
#include "qemu/memory_migration.hh"
#include "qemu/monitor.hh"
#include "qemu/process_paths.hh"
#include "util/process.hh"
#include "util/raii.hh"
#include "util/result.hh"

#include <libvirt/libvirt.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace virtsnap::qemu {

class Agent;

// A notification for the owner, to publish as a libvirt domain event.
struct DomainEvent {
    enum class Type {
        Lifecycle,   // VIR_DOMAIN_EVENT_ID_LIFECYCLE: `event` and `detail` are set
        Reboot,      // VIR_DOMAIN_EVENT_ID_REBOOT (QEMU RESET)
    };
    Type type = Type::Lifecycle;
    int event = 0;     // virDomainEventType (VIR_DOMAIN_EVENT_STARTED ...)
    int detail = 0;    // the matching *DetailType value
    int state = 0;     // the domain state and reason after the change
    int reason = 0;
    // For STOPPED: how QEMU ended, when it was our child and could be reaped.
    std::optional<process::ExitStatus> exit;
};

class DomainProcess {
public:
    using EventHandler = std::function<void(DomainProcess &process, const DomainEvent &event)>;

    struct StartOptions {
        bool paused = false;                  // leave the vCPUs stopped (VIR_DOMAIN_START_PAUSED)
        // Incoming migration (restore, revert to a memory state): QEMU starts with
        // -incoming defer and migrate-incoming gets `incoming_uri`, or "fd:incoming"
        // for `incoming_fd` (passed with getfd; the caller keeps ownership).
        std::string incoming_uri;
        int incoming_fd = -1;
        // Set: `incoming_fd` holds a sparse image (mapped-ram layout); QEMU
        // reads it through an fdset with these channels, and mapped-ram and
        // multifd are switched off again once it is in.
        std::optional<MappedRam> incoming_mapped_ram;
        std::chrono::milliseconds incoming_timeout = std::chrono::minutes(30);
        HostProbe host;                       // accelerator check result, firmware probe
        NodeIndexAllocator alloc;             // node indexes already used (status XML)
        // Reasons and event details for this start (restore: RESTORED/STARTED_RESTORED,
        // revert: FROM_SNAPSHOT/STARTED_FROM_SNAPSHOT ...).
        int running_reason = VIR_DOMAIN_RUNNING_BOOTED;
        int paused_reason = VIR_DOMAIN_PAUSED_USER;
        int started_detail = VIR_DOMAIN_EVENT_STARTED_BOOTED;
        int suspended_detail = VIR_DOMAIN_EVENT_SUSPENDED_PAUSED;
        std::chrono::milliseconds monitor_timeout = std::chrono::seconds(30);
    };

    // Builds the command line of `def` (the live definition, with its id set),
    // starts QEMU and sets it up. On failure QEMU is killed, sockets and status
    // removed, and the error is libvirt's, e.g. VIR_ERR_INTERNAL_ERROR
    // "qemu unexpectedly closed the monitor: <QEMU's last log lines>".
    [[nodiscard]] static Result<std::unique_ptr<DomainProcess>> start(const conf::DomainDef &def,
                                                                      const ProcessPaths &paths,
                                                                      const StartOptions &options,
                                                                      EventHandler handler);

    struct Reattached {
        // Null when the QEMU of the status file was gone (or could not be
        // reached and was killed): the domain is shut off with `shutoff_reason`
        // and its status file and sockets have been removed.
        std::unique_ptr<DomainProcess> process;
        int shutoff_reason = VIR_DOMAIN_SHUTOFF_UNKNOWN;
        DomainStatus status;   // as read from the file (status.def: the live definition)
    };
    // Finds the QEMU of paths.status_file again. Fails only when the status
    // file cannot be read or parsed (the caller decides what to do with it).
    [[nodiscard]] static Result<Reattached> reattach(const ProcessPaths &paths, EventHandler handler);

    // Closes monitor and agent without touching QEMU (daemon shutdown): QEMU
    // and its status file stay for the next reattach().
    ~DomainProcess();
    DomainProcess(const DomainProcess &) = delete;
    DomainProcess &operator=(const DomainProcess &) = delete;

    // ---- operations (caller holds the domain job) ----
    // stop / cont. Errors: OPERATION_INVALID "domain is not running".
    [[nodiscard]] Status suspend(int paused_reason = VIR_DOMAIN_PAUSED_USER);
    [[nodiscard]] Status resume(int running_reason = VIR_DOMAIN_RUNNING_UNPAUSED);
    // VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN / _GUEST_AGENT (0: agent if connected, else ACPI).
    [[nodiscard]] Status shutdown(unsigned flags = 0);
    // VIR_DOMAIN_REBOOT_ACPI_POWER_BTN (fake reboot: powerdown, then reset+cont
    // when the guest has shut down) / _GUEST_AGENT.
    [[nodiscard]] Status reboot(unsigned flags = 0);
    // system_reset (virDomainReset).
    [[nodiscard]] Status reset();
    // VIR_DOMAIN_DESTROY_GRACEFUL: SIGTERM only, fail if QEMU is still there
    // after `grace`. Otherwise SIGTERM, `grace`, then SIGKILL.
    [[nodiscard]] Status destroy(unsigned flags = 0, std::chrono::milliseconds grace = std::chrono::seconds(10));
    // destroy() with another outcome: save (SHUTOFF_SAVED, STOPPED_SAVED),
    // revert (SHUTOFF_FROM_SNAPSHOT, STOPPED_FROM_SNAPSHOT), migration ...
    [[nodiscard]] Status stop(int shutoff_reason, int stopped_detail,
                              std::chrono::milliseconds grace = std::chrono::seconds(10));

    // ---- runtime status updates (each rewrites the status file) ----
    [[nodiscard]] Status set_job(std::optional<StatusJob> job);
    // After a snapshot or block job changed a disk's layers.
    [[nodiscard]] Status set_block_graph(std::vector<DiskNodeNames> disks, unsigned next_node_index);
    [[nodiscard]] Status set_live_def(std::shared_ptr<const conf::DomainDef> def);

    // ---- accessors (any thread) ----
    const std::string &name() const { return paths_.domain; }
    const ProcessPaths &paths() const { return paths_; }
    pid_t pid() const { return pid_; }
    bool active() const;
    // virDomainState and reason.
    std::pair<int, int> state() const;
    DomainStatus status() const;
    std::shared_ptr<const conf::DomainDef> live_def() const;
    std::vector<DiskNodeNames> block_graph() const;
    // Node names QEMU reported at start / reattach (query-named-block-nodes).
    std::vector<std::string> known_nodes() const;
    // Valid until the DomainProcess is destroyed; calls fail with an EOF error
    // once QEMU is gone.
    Monitor &monitor() { return *monitor_; }
    // Null when the domain has no guest agent channel (or it could not be opened).
    Agent *agent() { return agent_.get(); }

private:
    DomainProcess(ProcessPaths paths, EventHandler handler);

    [[nodiscard]] Status launch(const conf::DomainDef &def, const StartOptions &options);
    [[nodiscard]] Status connect_monitor(std::chrono::milliseconds timeout, bool starting);
    void subscribe_events();
    [[nodiscard]] Status learn_block_nodes(bool strict);
    void connect_agent();
    [[nodiscard]] Status agent_shutdown(const char *mode);
    [[nodiscard]] Status run_incoming(const StartOptions &options);
    void abort_start(const Error &error);

    // Event handlers (monitor thread).
    void on_stop();
    void on_resume();
    void on_shutdown(const QmpEvent &event);
    void on_reset();
    void on_eof();
    // Worker thread tasks.
    void post(std::function<void()> task);
    void worker_loop();
    void handle_exit();
    void fake_reboot_reset();

    // Sends `signum` to QEMU through the pidfd (never to a reused pid).
    void send_signal(int signum);
    // Waits until QEMU has ended; reaps it when it is our child.
    bool wait_exit(std::chrono::milliseconds timeout);
    // Common end of every stop: log line, files removed, SHUTOFF, event.
    void finish_stop(int shutoff_reason, int stopped_detail);
    [[nodiscard]] Status kill_process(bool graceful, std::chrono::milliseconds grace);

    // Under mu_: sets state/reason and rewrites the status (logged on failure).
    void set_state_locked(int state, int reason);
    [[nodiscard]] Status save_status_locked();
    DomainStatus status_locked() const;
    void emit(DomainEvent event);
    void log_line(const std::string &text);
    std::string log_tail() const;
    void remove_runtime_files();

    ProcessPaths paths_;
    EventHandler handler_;
    pid_t pid_ = -1;
    unsigned long long start_time_ = 0;
    UniqueFd pidfd_;
    // Set while start() owns the child (killed and reaped on failure).
    std::optional<process::Child> child_;
    off_t log_offset_ = 0;   // QEMU's own output starts here in the log
    bool is_child_ = false;  // reapable with waitid
    std::optional<process::ExitStatus> exit_status_;

    std::unique_ptr<Monitor> monitor_;
    std::unique_ptr<Agent> agent_;

    mutable std::mutex mu_;
    int state_ = VIR_DOMAIN_PAUSED;
    int reason_ = VIR_DOMAIN_PAUSED_STARTING_UP;
    bool no_shutdown_ = true;
    std::string agent_path_;
    std::vector<std::string> memory_dirs_;   // CommandLine::memory_dirs of this QEMU
    std::shared_ptr<const conf::DomainDef> def_;
    std::vector<DiskNodeNames> disks_;
    unsigned next_node_index_ = 1;
    std::optional<StatusJob> job_;
    std::vector<std::string> known_nodes_;
    int pending_paused_reason_ = VIR_DOMAIN_PAUSED_UNKNOWN;
    int pending_running_reason_ = VIR_DOMAIN_RUNNING_UNKNOWN;
    bool got_shutdown_ = false;
    bool fake_reboot_ = false;
    bool paused_shutdown_ = false;   // QEMU is paused because the guest powered off

    std::atomic<bool> starting_{true};
    std::atomic<bool> being_destroyed_{false};
    std::atomic<bool> closing_{false};
    std::mutex stop_mu_;   // one stop procedure at a time (EOF handling vs destroy)
    std::mutex event_mu_;  // one handler call at a time

    std::mutex work_mu_;
    std::condition_variable work_cv_;
    std::deque<std::function<void()>> work_;
    bool work_quit_ = false;
    std::thread worker_;
};

}  // namespace virtsnap::qemu
