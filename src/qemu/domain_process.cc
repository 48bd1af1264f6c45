// domain_process.cc - spawning, setting up, watching and stopping one QEMU,
// and finding it again after a daemon restart.

#include "qemu/domain_process.hh"

#include "qemu/agent.hh"
#include "qemu/capabilities.hh"
#include "qemu/host_probe.hh"
#include "qemu/qemu_img.hh"
#include "util/file.hh"
#include "util/log.hh"
#include "util/xml_doc.hh"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MODULE "qemu.process"

namespace virtsnap::qemu {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr virErrorDomain kDomain = VIR_FROM_QEMU;
// libvirt keeps error messages below VIR_ERROR_MAX_LENGTH (1024) and so quotes
// only the end of QEMU's log.
constexpr size_t kLogTailMax = 1024;
constexpr const char *kAgentChannel = "org.qemu.guest_agent.0";

// waitid's P_PIDFD (Linux 5.4); glibc only names it in newer headers.
constexpr idtype_t kPidfdIdType = static_cast<idtype_t>(3);

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// libvirt's virTimeStringNow: "2024-01-31 12:34:56.789+0000".
std::string timestamp() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03d+0000", int(ts.tv_nsec / 1000000));
    return buf;
}

// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot) and the
// state letter; what tells "our QEMU" from a process that reused its pid.
struct ProcStat {
    char state = '?';
    unsigned long long start_time = 0;
};

// Whether process `pid` runs the executable file `path` (same device and
// inode: not a binary replaced on disk since it started).
bool runs_file(pid_t pid, const std::string &path) {
    struct stat exe {}, want {};
    return ::stat(("/proc/" + std::to_string(pid) + "/exe").c_str(), &exe) == 0 &&
           ::stat(path.c_str(), &want) == 0 && exe.st_dev == want.st_dev && exe.st_ino == want.st_ino;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
    auto text = file::read("/proc/" + std::to_string(pid) + "/stat", 64 * 1024);
    if (!text) return std::nullopt;
    // The command name may itself contain ')' and spaces: parse after the last ')'.
    size_t close = text->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(text->substr(close + 1));
    std::vector<std::string> fields;
    std::string f;
    while (in >> f) fields.push_back(f);
    // fields[0] is field 3 (state); field 22 is fields[19].
    if (fields.size() < 20) return std::nullopt;
    ProcStat st;
    st.state = fields[0].empty() ? '?' : fields[0][0];
    st.start_time = std::strtoull(fields[19].c_str(), nullptr, 10);
    return st;
}

std::string quote_arg(const std::string &arg) {
    if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "-_=,./:@%+") == std::string::npos)
        return arg;
    std::string out = "'";
    for (char c : arg) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

// The command line as libvirt logs it: environment first, one option per line.
std::string format_command_for_log(const std::vector<std::pair<std::string, std::string>> &env,
                                   const std::vector<std::string> &argv) {
    std::string out;
    for (const auto &[k, v] : env) out += k + "=" + quote_arg(v) + " \\\n";
    for (size_t i = 0; i < argv.size(); ++i) {
        out += quote_arg(argv[i]);
        bool next_is_option = i + 1 < argv.size() && !argv[i + 1].empty() && argv[i + 1][0] == '-';
        if (i + 1 == argv.size()) out += "\n";
        else out += next_is_option ? " \\\n" : " ";
    }
    return out;
}

// libvirt's virLogProbablyLogMessage: "YYYY-MM-DD HH:MM:SS.mmm+0000: " lines
// written by the daemon itself are not QEMU's words.
bool is_our_log_line(std::string_view line) {
    if (line.size() < 30) return false;
    static constexpr std::string_view kShape = "dddd-dd-dd dd:dd:dd.ddd+dddd: ";
    for (size_t i = 0; i < kShape.size(); ++i) {
        char want = kShape[i], got = line[i];
        if (want == 'd' ? !(got >= '0' && got <= '9') : got != want) return false;
    }
    return true;
}

// The agent channel of a definition: <channel type='unix'> with target name
// org.qemu.guest_agent.0; its socket is the source path or, without one,
// the per-domain path the command line uses.
std::string agent_socket_of(const conf::DomainDef &def, const std::string &default_path) {
    for (const auto &dev : def.devices) {
        if (dev.kind != "channel") continue;
        auto doc = xml::parse(dev.xml, "(channel)", VIR_FROM_DOMAIN);
        if (!doc) continue;
        xml::Node n = doc->root();
        xml::Node target = n.child("target");
        if (!target || target.attr("name").value_or("") != kAgentChannel) continue;
        if (n.attr("type").value_or("") != "unix") continue;
        xml::Node source = n.child("source");
        std::string path = source ? source.attr("path").value_or("") : "";
        return path.empty() ? default_path : path;
    }
    return {};
}

// libvirt's qemuDomainPausedReasonToSuspendedEvent.
int suspended_detail_for(int paused_reason) {
    switch (paused_reason) {
    case VIR_DOMAIN_PAUSED_MIGRATION: return VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED;
    case VIR_DOMAIN_PAUSED_FROM_SNAPSHOT: return VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT;
    case VIR_DOMAIN_PAUSED_POSTCOPY_FAILED: return VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED;
    case VIR_DOMAIN_PAUSED_POSTCOPY: return VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY;
    case VIR_DOMAIN_PAUSED_IOERROR: return VIR_DOMAIN_EVENT_SUSPENDED_IOERROR;
    case VIR_DOMAIN_PAUSED_WATCHDOG: return VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG;
    default: return VIR_DOMAIN_EVENT_SUSPENDED_PAUSED;
    }
}

// libvirt's qemuDomainRunningReasonToResumeEvent.
int resumed_detail_for(int running_reason) {
    switch (running_reason) {
    case VIR_DOMAIN_RUNNING_RESTORED:
    case VIR_DOMAIN_RUNNING_FROM_SNAPSHOT: return VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT;
    case VIR_DOMAIN_RUNNING_MIGRATED:
    case VIR_DOMAIN_RUNNING_MIGRATION_CANCELED: return VIR_DOMAIN_EVENT_RESUMED_MIGRATED;
    case VIR_DOMAIN_RUNNING_POSTCOPY: return VIR_DOMAIN_EVENT_RESUMED_POSTCOPY;
    case VIR_DOMAIN_RUNNING_POSTCOPY_FAILED: return VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED;
    default: return VIR_DOMAIN_EVENT_RESUMED_UNPAUSED;
    }
}

// libvirt's qemuMonitorJSONGetStatus reason mapping for a paused QEMU.
int paused_reason_from_run_state(const std::string &status) {
    if (status == "io-error") return VIR_DOMAIN_PAUSED_IOERROR;
    if (status == "watchdog") return VIR_DOMAIN_PAUSED_WATCHDOG;
    if (status == "shutdown") return VIR_DOMAIN_PAUSED_SHUTTING_DOWN;
    if (status == "postmigrate" || status == "finish-migrate" || status == "inmigrate")
        return VIR_DOMAIN_PAUSED_MIGRATION;
    if (status == "save-vm" || status == "restore-vm") return VIR_DOMAIN_PAUSED_SNAPSHOT;
    if (status == "guest-panicked") return VIR_DOMAIN_PAUSED_CRASHED;
    if (status == "paused") return VIR_DOMAIN_PAUSED_USER;
    return VIR_DOMAIN_PAUSED_UNKNOWN;
}

Unexpected not_running() { return fail(VIR_ERR_OPERATION_INVALID, kDomain, "domain is not running"); }

std::string shutoff_reason_name(int reason) {
    return std::string(domain_reason_name(VIR_DOMAIN_SHUTOFF, reason));
}

}  // namespace

// ---------------------------------------------------------------------------
// construction, start

DomainProcess::DomainProcess(ProcessPaths paths, EventHandler handler)
    : paths_(std::move(paths)), handler_(std::move(handler)) {
    worker_ = std::thread([this] { worker_loop(); });
}

DomainProcess::~DomainProcess() {
    // Detach: QEMU keeps running. Tear down the channels first so that no
    // event handler runs while the rest of the object goes away.
    closing_ = true;
    agent_.reset();
    monitor_.reset();
    {
        std::lock_guard lk(work_mu_);
        work_quit_ = true;
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    // A child still owned here means start() never finished; its destructor
    // kills it, which is what a failed start wants.
}

Result<std::unique_ptr<DomainProcess>> DomainProcess::start(const conf::DomainDef &def, const ProcessPaths &paths,
                                                            const StartOptions &options, EventHandler handler) {
    std::unique_ptr<DomainProcess> self(new DomainProcess(paths, std::move(handler)));
    Status st = self->launch(def, options);
    if (!st) {
        self->abort_start(st.error());
        return fail(std::move(st).error());
    }
    return self;
}

Status DomainProcess::launch(const conf::DomainDef &def, const StartOptions &options) {
    TRY(file::make_dirs(paths_.run_dir, 0755, kDomain));
    TRY(file::make_dirs(paths_.log_dir, 0755, kDomain));
    // Leftovers of an earlier run would make QEMU's bind fail or fool our wait.
    remove_runtime_files();

    // As libvirt (qemuDomainDetermineDiskChain) before any start, restore or
    // revert: a chain the XML leaves open is completed from the images, so
    // every layer is an explicit node and an overlay never loses its base.
    // The live definition shows the chain found.
    auto live = std::make_shared<conf::DomainDef>(def);
    TRY(qemu_img::complete_backing_chains(*live));
    // What this binary can do, probed once per binary and mtime: the monitor
    // refuses optional features the binary lacks before asking QEMU.
    std::shared_ptr<const QemuCaps> caps;
    if (options.host.caps) caps = TRY(options.host.caps(emulator_binary(*live)));

    CommandLineOptions clo;
    clo.paused = true;   // -S always: nothing runs before we have looked at it
    clo.incoming_defer = !options.incoming_uri.empty() || options.incoming_fd >= 0;
    NodeIndexAllocator alloc = options.alloc;
    CommandLine cmd = TRY(build_command_line(*live, paths_.runtime(), clo, options.host, alloc));
    if (std::find(cmd.argv.begin(), cmd.argv.end(), "-S") == cmd.argv.end())
        return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "QEMU command line lacks -S");

    {
        std::lock_guard lk(mu_);
        def_ = live;
        no_shutdown_ = std::find(cmd.argv.begin(), cmd.argv.end(), "-no-shutdown") != cmd.argv.end();
        agent_path_ = agent_socket_of(*live, paths_.agent_socket);
        memory_dirs_ = cmd.memory_dirs;
        next_node_index_ = cmd.next_node_index;
        disks_.clear();
        for (size_t i = 0; i < cmd.disks.size() && i < live->disks.size(); ++i) {
            DiskNodeNames d;
            d.target = live->disks[i].target_dev;
            for (const auto &layer : cmd.disks[i].layers)
                d.layers.push_back({layer.index, layer.storage_name(), layer.format_name()});
            disks_.push_back(std::move(d));
        }
        state_ = VIR_DOMAIN_PAUSED;
        reason_ = VIR_DOMAIN_PAUSED_STARTING_UP;
    }

    // The log: libvirt-like header, then QEMU's own output appended.
    std::vector<std::pair<std::string, std::string>> env = {{"LC_ALL", "C"}};
    if (const char *path = getenv("PATH")) env.emplace_back("PATH", path);
    env.emplace_back("HOME", paths_.run_dir);
    {
        struct utsname u;
        std::string kernel = ::uname(&u) == 0 ? u.release : "unknown";
        std::string host = ::uname(&u) == 0 ? u.nodename : "unknown";
        std::string header = timestamp() + ": starting up virtsnap, kernel: " + kernel + ", hostname: " + host +
                             "\n" + format_command_for_log(env, cmd.argv);
        UniqueFd fd(::open(paths_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
        if (!fd.valid())
            return fail(make_system_error(kDomain, errno, "failed to create logfile " + paths_.log_file));
        if (::write(fd.get(), header.data(), header.size()) != ssize_t(header.size()))
            return fail(make_system_error(kDomain, errno, "failed to write logfile " + paths_.log_file));
        struct stat sb;
        log_offset_ = ::fstat(fd.get(), &sb) == 0 ? sb.st_size : 0;
    }

    // Guest RAM on huge pages: QEMU creates (and unlinks at once) its file in
    // this directory, so nothing but the directory is left to clean up. The
    // directories above it are shared with other daemons on the mount
    // (libvirtd's QEMU runs as another user and must get through them).
    for (const auto &dir : cmd.memory_dirs) {
        TRY(file::make_dirs(file::dirname(dir), 0755, kDomain));
        TRY(file::make_dirs(dir, 0700, kDomain));
    }

    process::SpawnOptions so;
    so.argv = cmd.argv;
    so.clear_env = true;
    so.env = env;
    so.out = process::Output::file(paths_.log_file, true);
    so.stderr_to_stdout = true;
    so.daemonize = true;   // own session, no parent-death signal: outlives the daemon
    child_ = TRY(process::Child::spawn(so));
    pid_ = child_->pid();
    is_child_ = true;
    pidfd_.reset(pidfd_open(pid_));
    if (auto ps = read_proc_stat(pid_)) start_time_ = ps->start_time;
    VS_INFO("started QEMU for '%s', pid %d", paths_.domain.c_str(), int(pid_));

    TRY(connect_monitor(options.monitor_timeout, true));
    monitor_->set_caps(std::move(caps));
    subscribe_events();
    TRY(learn_block_nodes(true));
    connect_agent();
    if (clo.incoming_defer) TRY(run_incoming(options));

    // The status is on disk before the guest runs a single instruction, so a
    // daemon killed from here on finds this QEMU again.
    {
        std::lock_guard lk(mu_);
        TRY(save_status_locked());
    }
    starting_ = false;

    int started_detail = options.started_detail;
    if (!options.paused) {
        {
            std::lock_guard lk(mu_);
            pending_running_reason_ = options.running_reason;
        }
        Status cont = monitor_->cont();
        if (!cont) {
            starting_ = true;
            return cont;
        }
        std::lock_guard lk(mu_);
        // The RESUME handler normally set this already; either way the
        // reason is the start's own (booted, restored, from snapshot).
        set_state_locked(VIR_DOMAIN_RUNNING, options.running_reason);
    } else {
        std::lock_guard lk(mu_);
        set_state_locked(VIR_DOMAIN_PAUSED, options.paused_reason);
    }

    // QEMU is ours for good: from here it is watched through its pidfd, and
    // dropping this object must never kill it.
    child_->detach();
    child_.reset();

    auto [state, reason] = this->state();
    emit({DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_STARTED, started_detail, state, reason, {}});
    if (options.paused)
        emit({DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_SUSPENDED, options.suspended_detail, state, reason, {}});
    return ok();
}

Status DomainProcess::connect_monitor(milliseconds timeout, bool starting) {
    Monitor::Options mo;
    mo.vm_name = paths_.domain;
    auto deadline = Clock::now() + timeout;
    Error last = make_system_error(kDomain, ENOENT, "monitor socket did not show up");
    for (;;) {
        if (starting && child_) {
            auto exited = TRY(child_->wait_for(milliseconds(0)));
            if (exited) {
                exit_status_ = *exited;
                return fail(VIR_ERR_INTERNAL_ERROR, kDomain, "qemu unexpectedly closed the monitor" +
                                                                 (log_tail().empty() ? "" : ": " + log_tail()));
            }
        }
        if (file::exists(paths_.monitor_socket)) {
            auto mon = Monitor::connect(paths_.monitor_socket, mo);
            if (mon) {
                monitor_ = std::move(*mon);
                return ok();
            }
            last = mon.error();
            if (!starting) return fail(std::move(last));
        } else if (!starting) {
            return fail(std::move(last));
        }
        if (Clock::now() >= deadline) return fail(std::move(last));
        std::this_thread::sleep_for(milliseconds(20));
    }
}

void DomainProcess::subscribe_events() {
    monitor_->subscribe("STOP", [this](const QmpEvent &) { on_stop(); });
    monitor_->subscribe("RESUME", [this](const QmpEvent &) { on_resume(); });
    monitor_->subscribe("SHUTDOWN", [this](const QmpEvent &e) { on_shutdown(e); });
    monitor_->subscribe("RESET", [this](const QmpEvent &) { on_reset(); });
    monitor_->set_eof_handler([this](const Error &) { on_eof(); });
}

Status DomainProcess::learn_block_nodes(bool strict) {
    auto nodes = TRY(monitor_->query_named_block_nodes());
    std::set<std::string> names;
    for (const auto &n : nodes) names.insert(n.node_name);
    std::lock_guard lk(mu_);
    known_nodes_.assign(names.begin(), names.end());
    for (const auto &d : disks_) {
        for (const auto &l : d.layers) {
            for (const std::string *node : {&l.storage, &l.format}) {
                if (names.count(*node)) continue;
                if (strict)
                    return fail(VIR_ERR_INTERNAL_ERROR, kDomain,
                                "block node '" + *node + "' of disk '" + d.target + "' not found in QEMU");
                // After a restart a missing node means a job changed the graph
                // while we were away; the job journal reconciles it.
                VS_WARN("domain '%s': block node '%s' of disk '%s' not found in QEMU", paths_.domain.c_str(),
                        node->c_str(), d.target.c_str());
            }
        }
    }
    return ok();
}

void DomainProcess::connect_agent() {
    std::string path;
    {
        std::lock_guard lk(mu_);
        path = agent_path_;
    }
    if (path.empty()) return;
    // The guest may not run an agent (yet): a missing agent is not fatal, as
    // in libvirt, which reports agent errors when an agent command is used.
    auto agent = Agent::connect(path, Agent::Options{});
    if (!agent) {
        VS_WARN("domain '%s': cannot connect to guest agent: %s", paths_.domain.c_str(),
                agent.error().message().c_str());
        return;
    }
    agent_ = std::move(*agent);
}

Status DomainProcess::agent_shutdown(const char *mode) {
    if (!agent_) return fail(Agent::not_configured_error());
    return agent_->shutdown(mode);
}

Status DomainProcess::run_incoming(const StartOptions &options) {
    std::string uri = options.incoming_uri;
    std::optional<int64_t> fdset;
    bool mapped_caps_set = false;
    // The sparse layout's settings do not outlive the restore: a later plain
    // stream (save, snapshot) cannot go with them.
    ScopeExit undo_mapped([&] {
        if (fdset) (void)monitor_->remove_fd(*fdset);
        if (mapped_caps_set) {
            std::vector<MigrationCapability> off{{"mapped-ram", false}};
            if (options.incoming_mapped_ram->channels > 0) off.push_back({"multifd", false});
            if (auto st = monitor_->migrate_set_capabilities(off); !st)
                VS_WARN("cannot switch mapped-ram off after the restore: %s", st.error().message().c_str());
        }
    });
    if (options.incoming_fd >= 0 && options.incoming_mapped_ram) {
        const MappedRam &layout = *options.incoming_mapped_ram;
        TRY(check_mapped_ram(*monitor_, layout));
        std::vector<MigrationCapability> on{{"mapped-ram", true}};
        if (layout.channels > 0) on.push_back({"multifd", true});
        TRY(monitor_->migrate_set_capabilities(on));
        mapped_caps_set = true;
        if (layout.channels > 0)
            TRY(monitor_->migrate_set_parameters(QDict{{"multifd-channels", QValue(int64_t(layout.channels))}}));
        off_t offset = ::lseek(options.incoming_fd, 0, SEEK_CUR);
        UniqueFd reader = reopen_for_fdset(options.incoming_fd, O_RDONLY);
        if (offset < 0 || !reader.valid())
            return fail(make_system_error(kDomain, errno, "cannot reopen the memory image for QEMU"));
        fdset = TRY(monitor_->add_fd(reader.get(), std::nullopt, std::string("memory image"))).fdset_id;
        uri = fdset_file_uri(*fdset, uint64_t(offset));
    } else if (options.incoming_fd >= 0) {
        TRY(monitor_->getfd(options.incoming_fd, "incoming"));
        uri = "fd:incoming";
    }
    TRY(monitor_->migrate_incoming(uri));
    auto deadline = Clock::now() + options.incoming_timeout;
    for (;;) {
        MigrationInfo info = TRY(monitor_->query_migrate());
        if (info.status == "completed") return ok();
        if (info.status == "failed" || info.status == "cancelled")
            return fail(VIR_ERR_OPERATION_FAILED, kDomain,
                        "incoming migration failed: " + info.error_desc.value_or(info.status));
        if (Clock::now() >= deadline)
            return fail(VIR_ERR_OPERATION_TIMEOUT, kDomain, "incoming migration did not complete in time");
        std::this_thread::sleep_for(milliseconds(50));
    }
}

void DomainProcess::abort_start(const Error &error) {
    VS_WARN("start of '%s' failed: %s", paths_.domain.c_str(), error.message().c_str());
    being_destroyed_ = true;
    if (pid_ > 0) {
        send_signal(SIGKILL);
        wait_exit(milliseconds(5000));
    }
    if (child_) {
        (void)child_->terminate(milliseconds(0));
        child_.reset();
    }
    agent_.reset();
    monitor_.reset();
    log_line("shutting down, reason=failed");
    remove_runtime_files();
    std::lock_guard lk(mu_);
    state_ = VIR_DOMAIN_SHUTOFF;
    reason_ = VIR_DOMAIN_SHUTOFF_FAILED;
}

// ---------------------------------------------------------------------------
// re-attach

Result<DomainProcess::Reattached> DomainProcess::reattach(const ProcessPaths &paths, EventHandler handler) {
    Reattached out;
    out.status = TRY(DomainStatus::load(paths.status_file));
    const DomainStatus &st = out.status;

    std::unique_ptr<DomainProcess> self(new DomainProcess(paths, std::move(handler)));
    self->pid_ = st.pid;
    self->start_time_ = st.start_time;
    self->starting_ = true;
    {
        std::lock_guard lk(self->mu_);
        self->def_ = st.def;
        self->no_shutdown_ = st.no_shutdown;
        self->agent_path_ = st.agent_path;
        self->memory_dirs_ = st.memory_paths;
        self->disks_ = st.disks;
        self->next_node_index_ = st.next_node_index;
        self->job_ = st.job;
        self->state_ = st.state;
        self->reason_ = st.reason;
    }

    // Is the pid still our QEMU? Open the pidfd first and compare the start
    // time afterwards, so a pid reused in between cannot slip through.
    bool alive = false;
    self->pidfd_.reset(pidfd_open(st.pid));
    if (self->pidfd_.valid()) {
        auto ps = read_proc_stat(st.pid);
        alive = ps && ps->state != 'Z' && (st.start_time == 0 || ps->start_time == st.start_time);
        if (ps && ps->state == 'Z') self->wait_exit(milliseconds(0));
        if (ps && st.start_time && ps->start_time != st.start_time) {
            VS_WARN("domain '%s': pid %d belongs to another process now", paths.domain.c_str(), int(st.pid));
            self->pidfd_.reset();
        }
    }
    // libvirt: a QEMU whose monitor cannot be reached although it ran with
    // -no-shutdown has crashed; otherwise the reason is unknown.
    int gone_reason = st.no_shutdown ? VIR_DOMAIN_SHUTOFF_CRASHED : VIR_DOMAIN_SHUTOFF_UNKNOWN;
    if (alive) {
        // Another connection to the monitor (ours, before the restart) may
        // take a moment to be dropped by QEMU: retry briefly.
        Status conn = self->connect_monitor(std::chrono::seconds(10), false);
        if (!conn) {
            auto deadline = Clock::now() + std::chrono::seconds(10);
            while (!conn && Clock::now() < deadline && process::pid_alive(st.pid)) {
                std::this_thread::sleep_for(milliseconds(100));
                conn = self->connect_monitor(std::chrono::seconds(1), false);
            }
        }
        if (!conn) {
            VS_WARN("domain '%s': cannot reconnect to the monitor: %s", paths.domain.c_str(),
                    conn.error().message().c_str());
            // We can never control this QEMU again: kill it rather than let
            // the domain be started twice later.
            self->being_destroyed_ = true;
            if (self->pidfd_.valid()) {
                self->send_signal(SIGTERM);
                if (!self->wait_exit(std::chrono::seconds(10))) {
                    self->send_signal(SIGKILL);
                    self->wait_exit(std::chrono::seconds(5));
                }
            }
            alive = false;
        }
    }
    if (!alive) {
        self->monitor_.reset();
        self->log_line("shutting down, reason=" + shutoff_reason_name(gone_reason));
        self->remove_runtime_files();
        out.shutoff_reason = gone_reason;
        return out;
    }

    self->subscribe_events();
    // The running QEMU may predate an upgrade of its binary: ask it, not the
    // cache of the binary on disk.
    if (auto caps = probe_running(*self->monitor_, st.def ? emulator_binary(*st.def) : std::string())) {
        // What only a probe run of the binary tells (the snapshot gate)
        // holds for this QEMU when it runs that very file.
        QemuCaps running = std::move(caps).value();
        if (!running.binary.empty() && runs_file(self->pid_, running.binary))
            if (auto probed = host_caps_cache().get(running.binary)) {
                running.background_snapshot_gate_safe = (*probed)->background_snapshot_gate_safe;
                running.gate_reason = (*probed)->gate_reason;
            }
        self->monitor_->set_caps(std::make_shared<const QemuCaps>(std::move(running)));
    } else
        VS_WARN("domain '%s': cannot probe the running QEMU: %s", paths.domain.c_str(),
                caps.error().message().c_str());
    StatusInfo qs;
    if (auto r = self->monitor_->query_status()) {
        qs = *r;
    } else {
        // EOF right after connecting: it is ending; the EOF path reports it.
        VS_WARN("domain '%s': query-status failed: %s", paths.domain.c_str(), r.error().message().c_str());
        qs.running = st.state == VIR_DOMAIN_RUNNING;
    }
    {
        std::lock_guard lk(self->mu_);
        // libvirt's qemuProcessUpdateState: keep the recorded reason when
        // QEMU agrees, otherwise take what QEMU says.
        if (qs.running && self->state_ != VIR_DOMAIN_RUNNING) {
            self->state_ = VIR_DOMAIN_RUNNING;
            self->reason_ = VIR_DOMAIN_RUNNING_UNPAUSED;
        } else if (!qs.running && self->state_ == VIR_DOMAIN_RUNNING) {
            self->state_ = VIR_DOMAIN_PAUSED;
            self->reason_ = paused_reason_from_run_state(qs.status);
        }
        if (qs.status == "shutdown") {
            // The guest powered off while we were away.
            self->got_shutdown_ = true;
            self->paused_shutdown_ = true;
            self->state_ = VIR_DOMAIN_SHUTDOWN;
            self->reason_ = VIR_DOMAIN_SHUTDOWN_UNKNOWN;
        }
    }
    if (Status s = self->learn_block_nodes(false); !s)
        VS_WARN("domain '%s': %s", paths.domain.c_str(), s.error().message().c_str());
    self->connect_agent();
    {
        std::lock_guard lk(self->mu_);
        if (Status s = self->save_status_locked(); !s)
            VS_WARN("domain '%s': %s", paths.domain.c_str(), s.error().message().c_str());
    }
    self->starting_ = false;
    bool shut = false;
    {
        std::lock_guard lk(self->mu_);
        shut = self->state_ == VIR_DOMAIN_SHUTDOWN;
    }
    // A poweroff we missed is finished now, as the SHUTDOWN event would have.
    if (shut && self->no_shutdown_) self->send_signal(SIGTERM);
    // If QEMU closed the monitor while we were still setting up, the EOF
    // handler ignored it; handle it now.
    if (self->monitor_->closed()) self->post([p = self.get()] { p->handle_exit(); });
    VS_INFO("re-attached to QEMU of '%s', pid %d", paths.domain.c_str(), int(st.pid));
    out.process = std::move(self);
    return out;
}

// ---------------------------------------------------------------------------
// operations

Status DomainProcess::suspend(int paused_reason) {
    {
        std::lock_guard lk(mu_);
        if (state_ == VIR_DOMAIN_SHUTOFF) return not_running();
        if (state_ == VIR_DOMAIN_PAUSED) return ok();
        pending_paused_reason_ = paused_reason;
    }
    TRY(monitor_->stop());
    std::unique_lock lk(mu_);
    // QEMU sends STOP before the reply, so the handler normally did this.
    if (state_ != VIR_DOMAIN_RUNNING) return ok();
    set_state_locked(VIR_DOMAIN_PAUSED, paused_reason);
    pending_paused_reason_ = VIR_DOMAIN_PAUSED_UNKNOWN;
    DomainEvent ev{DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_SUSPENDED, suspended_detail_for(paused_reason),
                   state_, reason_, {}};
    lk.unlock();
    emit(ev);
    return ok();
}

Status DomainProcess::resume(int running_reason) {
    {
        std::lock_guard lk(mu_);
        if (state_ == VIR_DOMAIN_SHUTOFF) return not_running();
        if (state_ == VIR_DOMAIN_RUNNING) return ok();
        pending_running_reason_ = running_reason;
    }
    TRY(monitor_->cont());
    std::unique_lock lk(mu_);
    // As for suspend(): the RESUME handler normally got here first.
    if (state_ == VIR_DOMAIN_RUNNING || state_ == VIR_DOMAIN_SHUTOFF) return ok();
    set_state_locked(VIR_DOMAIN_RUNNING, running_reason);
    pending_running_reason_ = VIR_DOMAIN_RUNNING_UNKNOWN;
    DomainEvent ev{DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_RESUMED, resumed_detail_for(running_reason),
                   state_, reason_, {}};
    lk.unlock();
    emit(ev);
    return ok();
}

Status DomainProcess::shutdown(unsigned flags) {
    constexpr unsigned kSupported = VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN | VIR_DOMAIN_SHUTDOWN_GUEST_AGENT;
    if (flags & ~kSupported) {
        char buf[96];
        snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function %s", flags & ~kSupported,
                 "qemuDomainShutdownFlags");
        return fail(VIR_ERR_INVALID_ARG, kDomain, buf);
    }
    if (!active()) return not_running();
    bool agent_requested = flags & VIR_DOMAIN_SHUTDOWN_GUEST_AGENT;
    bool acpi_requested = flags & VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN;
    // libvirt prefers the agent unless told otherwise, and falls back to ACPI
    // unless the agent was the only method asked for.
    bool use_agent = agent_requested || (!flags && agent_);
    if (use_agent) {
        if (!agent_) {
            if (agent_requested && !acpi_requested) return fail(Agent::not_configured_error());
        } else {
            Status s = agent_shutdown("powerdown");
            if (s || (agent_requested && !acpi_requested)) return s;
        }
    }
    {
        std::lock_guard lk(mu_);
        fake_reboot_ = false;
    }
    return monitor_->system_powerdown();
}

Status DomainProcess::reboot(unsigned flags) {
    constexpr unsigned kSupported = VIR_DOMAIN_REBOOT_ACPI_POWER_BTN | VIR_DOMAIN_REBOOT_GUEST_AGENT;
    if (flags & ~kSupported) {
        char buf[96];
        snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function %s", flags & ~kSupported,
                 "qemuDomainReboot");
        return fail(VIR_ERR_INVALID_ARG, kDomain, buf);
    }
    if (!active()) return not_running();
    bool agent_requested = flags & VIR_DOMAIN_REBOOT_GUEST_AGENT;
    bool acpi_requested = flags & VIR_DOMAIN_REBOOT_ACPI_POWER_BTN;
    bool use_agent = agent_requested || (!flags && agent_);
    if (use_agent) {
        if (!agent_) {
            if (agent_requested && !acpi_requested) return fail(Agent::not_configured_error());
        } else {
            Status s = agent_shutdown("reboot");
            if (s || (agent_requested && !acpi_requested)) return s;
        }
    }
    if (!no_shutdown_)
        return fail(VIR_ERR_OPERATION_INVALID, kDomain, "Reboot is not supported without the -no-shutdown flag");
    {
        std::lock_guard lk(mu_);
        fake_reboot_ = true;
    }
    return monitor_->system_powerdown();
}

Status DomainProcess::reset() {
    if (!active()) return not_running();
    return monitor_->system_reset();
}

Status DomainProcess::destroy(unsigned flags, milliseconds grace) {
    constexpr unsigned kSupported = VIR_DOMAIN_DESTROY_GRACEFUL | VIR_DOMAIN_DESTROY_REMOVE_LOGS;
    if (flags & ~kSupported) {
        char buf[96];
        snprintf(buf, sizeof buf, "unsupported flags (0x%x) in function %s", flags & ~kSupported,
                 "qemuDomainDestroyFlags");
        return fail(VIR_ERR_INVALID_ARG, kDomain, buf);
    }
    being_destroyed_ = true;
    std::lock_guard stop(stop_mu_);
    if (!active()) {
        being_destroyed_ = false;
        return not_running();
    }
    Status killed = kill_process(flags & VIR_DOMAIN_DESTROY_GRACEFUL, grace);
    if (!killed) {
        being_destroyed_ = false;
        return killed;
    }
    finish_stop(VIR_DOMAIN_SHUTOFF_DESTROYED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED);
    if (flags & VIR_DOMAIN_DESTROY_REMOVE_LOGS) (void)file::remove(paths_.log_file, kDomain);
    return ok();
}

Status DomainProcess::stop(int shutoff_reason, int stopped_detail, milliseconds grace) {
    being_destroyed_ = true;
    std::lock_guard stop(stop_mu_);
    if (!active()) {
        being_destroyed_ = false;
        return not_running();
    }
    TRY(kill_process(false, grace));
    finish_stop(shutoff_reason, stopped_detail);
    return ok();
}

Status DomainProcess::kill_process(bool graceful, milliseconds grace) {
    // libvirt's virProcessKillPainfully: SIGTERM, a grace period, SIGKILL.
    send_signal(SIGTERM);
    if (wait_exit(grace)) return ok();
    if (graceful)
        return fail(make_system_error(kDomain, EBUSY,
                                      "Failed to terminate process " + std::to_string(pid_) + " with SIGTERM"));
    send_signal(SIGKILL);
    if (wait_exit(std::chrono::seconds(5))) return ok();
    return fail(make_system_error(kDomain, EBUSY,
                                  "Failed to terminate process " + std::to_string(pid_) + " with SIGKILL"));
}

// ---------------------------------------------------------------------------
// status updates and accessors

Status DomainProcess::set_job(std::optional<StatusJob> job) {
    std::lock_guard lk(mu_);
    job_ = std::move(job);
    return save_status_locked();
}

Status DomainProcess::set_block_graph(std::vector<DiskNodeNames> disks, unsigned next_node_index) {
    std::lock_guard lk(mu_);
    disks_ = std::move(disks);
    next_node_index_ = next_node_index;
    return save_status_locked();
}

Status DomainProcess::set_live_def(std::shared_ptr<const conf::DomainDef> def) {
    std::lock_guard lk(mu_);
    def_ = std::move(def);
    return save_status_locked();
}

bool DomainProcess::active() const {
    std::lock_guard lk(mu_);
    return state_ != VIR_DOMAIN_SHUTOFF;
}

std::pair<int, int> DomainProcess::state() const {
    std::lock_guard lk(mu_);
    return {state_, reason_};
}

DomainStatus DomainProcess::status() const {
    std::lock_guard lk(mu_);
    return status_locked();
}

std::shared_ptr<const conf::DomainDef> DomainProcess::live_def() const {
    std::lock_guard lk(mu_);
    return def_;
}

std::vector<DiskNodeNames> DomainProcess::block_graph() const {
    std::lock_guard lk(mu_);
    return disks_;
}

std::vector<std::string> DomainProcess::known_nodes() const {
    std::lock_guard lk(mu_);
    return known_nodes_;
}

DomainStatus DomainProcess::status_locked() const {
    DomainStatus st;
    st.state = state_;
    st.reason = reason_;
    st.pid = pid_;
    st.start_time = start_time_;
    st.no_shutdown = no_shutdown_;
    st.monitor_path = paths_.monitor_socket;
    st.agent_path = agent_path_;
    st.log_path = paths_.log_file;
    st.memory_paths = memory_dirs_;
    st.next_node_index = next_node_index_;
    st.disks = disks_;
    st.job = job_;
    st.def = def_;
    return st;
}

Status DomainProcess::save_status_locked() { return status_locked().save(paths_.status_file); }

void DomainProcess::set_state_locked(int state, int reason) {
    state_ = state;
    reason_ = reason;
    if (state == VIR_DOMAIN_SHUTOFF) return;
    if (Status s = save_status_locked(); !s)
        VS_ERROR("domain '%s': cannot save status: %s", paths_.domain.c_str(), s.error().message().c_str());
}

void DomainProcess::emit(DomainEvent event) {
    if (!handler_) return;
    std::lock_guard lk(event_mu_);
    handler_(*this, event);
}

// ---------------------------------------------------------------------------
// QMP events (monitor thread)

void DomainProcess::on_stop() {
    std::unique_lock lk(mu_);
    int reason = pending_paused_reason_ != VIR_DOMAIN_PAUSED_UNKNOWN ? pending_paused_reason_
                                                                       : VIR_DOMAIN_PAUSED_UNKNOWN;
    pending_paused_reason_ = VIR_DOMAIN_PAUSED_UNKNOWN;
    // A guest poweroff under -no-shutdown also stops QEMU; that pause is not
    // the domain's state (libvirt's pausedShutdown).
    if (state_ != VIR_DOMAIN_RUNNING || paused_shutdown_) return;
    set_state_locked(VIR_DOMAIN_PAUSED, reason);
    DomainEvent ev{DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_SUSPENDED, suspended_detail_for(reason), state_,
                   reason_, {}};
    lk.unlock();
    emit(ev);
}

void DomainProcess::on_resume() {
    std::unique_lock lk(mu_);
    int reason = pending_running_reason_ != VIR_DOMAIN_RUNNING_UNKNOWN ? pending_running_reason_
                                                                         : VIR_DOMAIN_RUNNING_UNPAUSED;
    pending_running_reason_ = VIR_DOMAIN_RUNNING_UNKNOWN;
    if (state_ == VIR_DOMAIN_RUNNING || state_ == VIR_DOMAIN_SHUTOFF) return;
    set_state_locked(VIR_DOMAIN_RUNNING, reason);
    DomainEvent ev{DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_RESUMED, resumed_detail_for(reason), state_,
                   reason_, {}};
    lk.unlock();
    emit(ev);
}

void DomainProcess::on_shutdown(const QmpEvent &event) {
    // Our own SIGTERM (destroy) makes QEMU report a host-initiated shutdown;
    // libvirt reports only the destroy.
    if (being_destroyed_) return;
    std::optional<bool> guest;
    if (auto parsed = parse_shutdown_event(event)) guest = parsed->guest;
    std::unique_lock lk(mu_);
    if (state_ == VIR_DOMAIN_SHUTDOWN || state_ == VIR_DOMAIN_SHUTOFF) return;
    got_shutdown_ = true;
    if (fake_reboot_) {
        // The guest shut down for a reboot: reset and continue it, no state change.
        paused_shutdown_ = true;
        lk.unlock();
        post([this] { fake_reboot_reset(); });
        return;
    }
    paused_shutdown_ = true;
    set_state_locked(VIR_DOMAIN_SHUTDOWN, VIR_DOMAIN_SHUTDOWN_UNKNOWN);
    int detail = !guest ? VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED
                 : *guest ? VIR_DOMAIN_EVENT_SHUTDOWN_GUEST
                          : VIR_DOMAIN_EVENT_SHUTDOWN_HOST;
    DomainEvent ev{DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_SHUTDOWN, detail, state_, reason_, {}};
    bool no_shutdown = no_shutdown_;
    lk.unlock();
    emit(ev);
    // QEMU stayed paused (-no-shutdown): end it, as libvirt does on poweroff.
    if (no_shutdown) send_signal(SIGTERM);
}

void DomainProcess::on_reset() {
    auto [state, reason] = this->state();
    if (state == VIR_DOMAIN_SHUTOFF) return;
    emit({DomainEvent::Type::Reboot, 0, 0, state, reason, {}});
}

void DomainProcess::on_eof() {
    // During start and re-attach the caller handles a vanishing QEMU itself;
    // during destroy the EOF is expected.
    if (starting_ || being_destroyed_ || closing_) return;
    post([this] { handle_exit(); });
}

// ---------------------------------------------------------------------------
// worker thread

void DomainProcess::post(std::function<void()> task) {
    {
        std::lock_guard lk(work_mu_);
        if (work_quit_) return;
        work_.push_back(std::move(task));
    }
    work_cv_.notify_one();
}

void DomainProcess::worker_loop() {
    for (;;) {
        std::function<void()> task;
        {
            std::unique_lock lk(work_mu_);
            work_cv_.wait(lk, [this] { return work_quit_ || !work_.empty(); });
            if (work_.empty()) return;
            task = std::move(work_.front());
            work_.pop_front();
        }
        task();
    }
}

void DomainProcess::handle_exit() {
    if (being_destroyed_ || closing_) return;
    std::lock_guard stop(stop_mu_);
    if (being_destroyed_ || !active()) return;
    // QEMU closes the monitor as it exits; give it a moment, then make sure.
    if (!wait_exit(std::chrono::seconds(5))) {
        send_signal(SIGTERM);
        if (!wait_exit(std::chrono::seconds(10))) {
            send_signal(SIGKILL);
            wait_exit(std::chrono::seconds(5));
        }
    }
    bool shutdown;
    {
        std::lock_guard lk(mu_);
        shutdown = got_shutdown_;
    }
    // libvirt: EOF without a SHUTDOWN event first means the guest crashed.
    if (shutdown) finish_stop(VIR_DOMAIN_SHUTOFF_SHUTDOWN, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN);
    else finish_stop(VIR_DOMAIN_SHUTOFF_CRASHED, VIR_DOMAIN_EVENT_STOPPED_FAILED);
}

void DomainProcess::fake_reboot_reset() {
    if (closing_ || !active()) return;
    Status s = ok();
    s = monitor_->system_reset();
    if (s) s = monitor_->cont();
    std::lock_guard lk(mu_);
    fake_reboot_ = false;
    paused_shutdown_ = false;
    got_shutdown_ = false;
    if (!s) VS_WARN("domain '%s': fake reboot failed: %s", paths_.domain.c_str(), s.error().message().c_str());
}

// ---------------------------------------------------------------------------
// the process itself

void DomainProcess::send_signal(int signum) {
    if (pidfd_.valid()) {
        if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), signum, nullptr, 0) < 0 && errno != ESRCH)
            VS_WARN("cannot signal QEMU of '%s': %s", paths_.domain.c_str(), strerror(errno));
    } else if (child_ && !child_->reaped()) {
        (void)child_->signal(signum);
    }
}

bool DomainProcess::wait_exit(milliseconds timeout) {
    if (child_) {
        auto r = child_->wait_for(timeout);
        if (r && *r) {
            exit_status_ = **r;
            return true;
        }
        return child_->reaped();
    }
    if (!pidfd_.valid()) return true;
    struct pollfd p = {pidfd_.get(), POLLIN, 0};
    int n;
    do {
        n = ::poll(&p, 1, int(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    // Our own child (started by this daemon process) leaves a zombie: reap it
    // and learn how it ended. Anyone else's QEMU is reaped by its parent.
    siginfo_t info{};
    if (::waitid(kPidfdIdType, id_t(pidfd_.get()), &info, WEXITED | WNOHANG) == 0 && info.si_pid != 0) {
        process::ExitStatus es;
        if (info.si_code == CLD_EXITED) {
            es.exited = true;
            es.code = info.si_status;
        } else {
            es.signal = info.si_status;
        }
        exit_status_ = es;
    }
    return true;
}

void DomainProcess::finish_stop(int shutoff_reason, int stopped_detail) {
    log_line("shutting down, reason=" + shutoff_reason_name(shutoff_reason));
    if (exit_status_)
        VS_INFO("QEMU of '%s' (pid %d) ended: %s", paths_.domain.c_str(), int(pid_), exit_status_->describe().c_str());
    else
        // A QEMU found again after a daemon restart is not our child: waitid
        // cannot reap it, so how it ended is not known (its parent reaps it).
        VS_INFO("QEMU of '%s' (pid %d) ended; its exit status is unknown%s", paths_.domain.c_str(), int(pid_),
                is_child_ ? "" : ": it is not a child of this daemon");
    remove_runtime_files();
    DomainEvent ev;
    {
        std::lock_guard lk(mu_);
        state_ = VIR_DOMAIN_SHUTOFF;
        reason_ = shutoff_reason;
        job_.reset();
        ev = {DomainEvent::Type::Lifecycle, VIR_DOMAIN_EVENT_STOPPED, stopped_detail, state_, reason_, exit_status_};
    }
    emit(ev);
}

void DomainProcess::log_line(const std::string &text) {
    std::string line = timestamp() + ": " + text + "\n";
    UniqueFd fd(::open(paths_.log_file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    if (fd.valid() && ::write(fd.get(), line.data(), line.size()) < 0)
        VS_WARN("cannot write %s: %s", paths_.log_file.c_str(), strerror(errno));
}

std::string DomainProcess::log_tail() const {
    auto text = file::read(paths_.log_file, 64 * 1024 * 1024, kDomain);
    if (!text) return {};
    std::string_view all(*text);
    if (size_t(log_offset_) <= all.size()) all.remove_prefix(size_t(log_offset_));
    std::string kept;
    while (!all.empty()) {
        size_t nl = all.find('\n');
        std::string_view line = all.substr(0, nl);
        all.remove_prefix(nl == std::string_view::npos ? all.size() : nl + 1);
        if (is_our_log_line(line) || line.rfind("char device redirected to", 0) == 0) continue;
        kept.append(line);
        kept += '\n';
    }
    while (!kept.empty() && kept.back() == '\n') kept.pop_back();
    size_t max = kLogTailMax - std::string_view("qemu unexpectedly closed the monitor: ").size();
    if (kept.size() > max) {
        size_t skip = kept.size() - max;
        // Start at a line boundary when there is one inside the kept part.
        size_t nl = kept.find('\n', skip);
        kept.erase(0, nl != std::string::npos && nl + 1 < kept.size() ? nl + 1 : skip);
    }
    return kept;
}

void DomainProcess::remove_runtime_files() {
    for (const std::string *path : {&paths_.status_file, &paths_.monitor_socket, &paths_.pidfile})
        if (Status s = file::remove(*path, kDomain); !s)
            VS_WARN("%s", s.error().message().c_str());
    std::string agent;
    std::vector<std::string> memory_dirs;
    {
        std::lock_guard lk(mu_);
        agent = agent_path_;
        memory_dirs = memory_dirs_;
    }
    for (const auto &dir : memory_dirs)
        if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
            VS_WARN("cannot remove %s: %s", dir.c_str(), strerror(errno));
    // Only the socket QEMU created in our run directory is ours to remove.
    if (agent.empty()) agent = paths_.agent_socket;
    if (agent == paths_.agent_socket)
        if (Status s = file::remove(agent, kDomain); !s) VS_WARN("%s", s.error().message().c_str());
}

}  // namespace virtsnap::qemu
