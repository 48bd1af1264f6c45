// capabilities.cc - probing a QEMU binary over QMP, and the per-binary cache.

#include "qemu/capabilities.hh"
#include "qemu/migration_gate.hh"
#include "qemu/monitor.hh"
#include "qemu/monitor_json.hh"
#include "qemu/qmp_channel.hh"

#define LOG_MODULE "qemu.capabilities"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <gio/gio.h>

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace virtsnap::qemu {

std::string QemuCaps::version() const {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(micro);
}

bool QemuCaps::has_snapshot_jobs() const {
    return has_command("snapshot-save") && has_command("snapshot-load") && has_command("snapshot-delete");
}

bool QemuCaps::has_machine(const std::string &name) const {
    for (const auto &m : machines)
        if (m.name == name || m.alias == name) return true;
    return false;
}

namespace {

using Clock = std::chrono::steady_clock;

// A private directory for the probe's socket and log, removed on scope exit.
struct ProbeDir {
    std::string path;
    ProbeDir() {
        GErrorPtr err;
        GCharPtr p(g_dir_make_tmp("virtsnap-caps-XXXXXX", out_ptr(err)));
        if (p) path = p.get();
        else VS_WARN("cannot create a probe directory: %s", err ? err->message : "unknown error");
    }
    ~ProbeDir() {
        if (path.empty()) return;
        auto entries = file::list_dir(path);
        if (entries)
            for (const auto &e : *entries) ::unlink((path + "/" + e).c_str());
        ::rmdir(path.c_str());
    }
};

// A QEMU child process, killed if still running when dropped.
class Child {
public:
    ~Child() {
        if (proc_) {
            if (g_subprocess_get_identifier(proc_.get())) g_subprocess_force_exit(proc_.get());
            g_subprocess_wait(proc_.get(), nullptr, nullptr);
        }
    }
    Status spawn(const std::vector<std::string> &args, const std::string &log_path) {
        std::vector<const gchar *> argv;
        for (const auto &a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        GObjectPtr<GSubprocessLauncher> launcher(g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_INHERIT));
        g_subprocess_launcher_set_flags(launcher.get(), G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
        g_subprocess_launcher_set_stderr_file_path(launcher.get(), log_path.c_str());
        // A probe QEMU has no guest to keep: it must not outlive a prober that
        // is killed mid-probe (it would wait with -S forever). The probing
        // thread waits for it, so tying it to that thread is safe.
        g_subprocess_launcher_set_child_setup(
            launcher.get(), [](gpointer) { ::prctl(PR_SET_PDEATHSIG, SIGKILL); }, nullptr, nullptr);
        GErrorPtr err;
        proc_.reset(g_subprocess_launcher_spawnv(launcher.get(), argv.data(), out_ptr(err)));
        if (!proc_)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        std::string("Failed to probe QEMU binary: ") + (err ? err->message : "unknown error"));
        return ok();
    }
    pid_t pid() const {
        const gchar *id = proc_ ? g_subprocess_get_identifier(proc_.get()) : nullptr;
        return id ? pid_t(std::atoi(id)) : -1;
    }
    // GLib notices the exit on its worker thread and clears the identifier.
    bool running() const { return proc_ && g_subprocess_get_identifier(proc_.get()); }
    // Waits for the exit; returns the exit status or -1 (killed by a signal or timeout).
    int wait_exit(std::chrono::milliseconds limit) {
        auto deadline = Clock::now() + limit;
        while (running() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (running()) return -1;
        g_subprocess_wait(proc_.get(), nullptr, nullptr);
        return g_subprocess_get_if_exited(proc_.get()) ? g_subprocess_get_exit_status(proc_.get()) : -1;
    }

private:
    GObjectPtr<GSubprocess> proc_;
};

std::string read_log(const std::string &path) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > 2000) text.resize(2000);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

// Starts `binary` with no guest and a QMP socket, runs `probe` on the monitor
// (and QEMU's pid), then quits QEMU.
Status with_qmp(const std::string &binary, const std::vector<std::string> &extra, const ProbeOptions &options,
                const std::function<Status(Monitor &, pid_t)> &probe) {
    ProbeDir dir;
    if (dir.path.empty())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "cannot create a directory for probing " + binary);
    std::string sock = dir.path + "/qmp.sock";
    std::string log = dir.path + "/qemu.log";
    std::vector<std::string> args = {binary, "-S", "-no-user-config", "-nodefaults", "-display", "none",
                                     "-machine", "none"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"-qmp", "unix:" + sock + ",server=on,wait=off"});
    Child child;
    TRY(child.spawn(args, log));

    auto deadline = Clock::now() + options.timeout;
    UniqueFd fd;
    while (!fd.valid()) {
        auto c = QmpChannel::connect_unix(sock, "monitor");
        if (c) {
            fd = std::move(c).value();
            break;
        }
        if (!child.running() || Clock::now() >= deadline) {
            int status = child.wait_exit(std::chrono::milliseconds(1000));
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU,
                        "Failed to probe QEMU binary with QMP: exit status " + std::to_string(status) + ": " +
                            read_log(log));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Monitor::Options mopts;
    mopts.vm_name = "(probe)";
    mopts.timeout = options.timeout;
    mopts.greeting_timeout = options.timeout;
    auto mon = TRY(Monitor::open(std::move(fd), mopts));
    Status result = probe(*mon, child.pid());
    // QEMU closes the monitor as it quits, so the reply may never come.
    Status quit = mon->quit();
    if (!quit) VS_DEBUG("quit during probe: %s", quit.error().message().c_str());
    mon.reset();
    child.wait_exit(std::chrono::milliseconds(5000));
    return result;
}

// What any monitor of the binary tells: version, schema, migration capabilities.
Status probe_schema(Monitor &mon, QemuCaps &caps) {
    const QmpGreeting &g = mon.greeting();
    caps.major = g.major;
    caps.minor = g.minor;
    caps.micro = g.micro;
    caps.package = g.package;
    QValue schema = TRY(mon.query_qmp_schema());
    for (auto &n : TRY(qmpjson::parse_schema_names(schema, "command"))) caps.commands.insert(std::move(n));
    for (auto &n : TRY(qmpjson::parse_schema_names(schema, "event"))) caps.events.insert(std::move(n));
    for (const auto &c : TRY(mon.query_migrate_capabilities())) caps.migration_capabilities.insert(c.capability);
    return ok();
}

// Whether the monitor answers while a background snapshot is held at its
// first write (migration_gate.hh): the gated order of instant snapshots is
// sound only then. QEMU runs no guest here (-machine none), so this takes
// milliseconds where the monitor answers, and kGateAnswerWait where it does not.
constexpr auto kGateAnswerWait = std::chrono::milliseconds(1500);

Status probe_gate(Monitor &mon, pid_t pid, QemuCaps &caps) {
    if (!caps.has_background_snapshot() || pid <= 0) return ok();
    // QEMU 7.2 aborts a background snapshot that starts in prelaunch; with
    // no CPUs, running changes nothing else.
    TRY(mon.cont());
    if (auto st = mon.migrate_set_capabilities({{"background-snapshot", true}}); !st) {
        caps.gate_reason = "background snapshots are refused here: " + st.error().detail;
        return ok();
    }
    auto gate = TRY(MigrationGate::shut());
    TRY(mon.getfd(gate.write_end(), "migrate"));
    gate.close_write_end();
    UniqueFd stream = gate.take_read_end();
    TRY(mon.migrate("fd:migrate"));

    std::mutex mu;
    std::condition_variable cv;
    bool answered = false, opened = false;
    // Opens the gate once the monitor answered, or after kGateAnswerWait
    // (a QEMU that blocks its monitor needs it opened to answer at all), then
    // reads the stream to its end.
    std::thread opener([&] {
        {
            std::unique_lock lk(mu);
            cv.wait_for(lk, kGateAnswerWait, [&] { return answered; });
            opened = true;
        }
        char buf[65536];
        auto until = Clock::now() + std::chrono::seconds(10);
        while (Clock::now() < until) {
            pollfd p{stream.get(), POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            ssize_t n = ::read(stream.get(), buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
    });
    bool held = wait_until_gate_holds(pid, std::chrono::milliseconds(2000), nullptr);
    Status answer = ok();
    if (held)
        if (auto r = mon.query_status(); !r) answer = fail(std::move(r).error());
    {
        std::lock_guard lk(mu);
        caps.background_snapshot_gate_safe = held && answer && !opened;
        answered = true;
    }
    cv.notify_all();
    for (int i = 0; i < 100; ++i) {
        auto info = mon.query_migrate();
        if (!info || info->status == "completed" || info->status == "failed" || info->status == "cancelled") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    opener.join();
    if (!held) caps.gate_reason = "no QEMU thread was seen blocked on the stream";
    else if (!caps.background_snapshot_gate_safe) caps.gate_reason = "the monitor does not answer while the stream is held";
    return answer;
}

Status probe_main(const std::string &binary, const ProbeOptions &options, QemuCaps &caps) {
    return with_qmp(binary, {}, options, [&](Monitor &mon, pid_t pid) -> Status {
        TRY(probe_schema(mon, caps));
        caps.machines = TRY(mon.query_machines());
        for (const auto &m : caps.machines)
            if (m.is_default) caps.default_machine = m.name;
        // Best effort: without it instant snapshots use the stop-first order.
        if (Status st = probe_gate(mon, pid, caps); !st) {
            caps.background_snapshot_gate_safe = false;
            caps.gate_reason = st.error().message();
        }
        return ok();
    });
}

// A 64 KiB firmware that does what every kernel does first - real mode,
// protected mode, 4-level paging, long mode - and then writes 0x2a to
// isa-debug-exit at 0xf4: QEMU exits with status (0x2a << 1) | 1. On hosts
// where /dev/kvm works but guests hang, they hang in these switches (right
// after the kernel's real-mode setup), so running real-mode code alone is
// not enough to tell. Mapped at 0xf0000; the reset vector jumps to its start.
constexpr int kProbeExitStatus = (0x2a << 1) | 1;
std::string probe_firmware() {
    static const unsigned char code[] = {
        // 16-bit, at 0xf0000
        0xFA,                                      // cli
        0xB8, 0x00, 0xF0, 0x8E, 0xD8,              // mov ax,0xf000; mov ds,ax
        0x66, 0x0F, 0x01, 0x16, 0xB0, 0x00,        // lgdt [0xb0]
        0x0F, 0x20, 0xC0, 0x66, 0x83, 0xC8, 0x01,  // mov eax,cr0; or eax,1
        0x0F, 0x22, 0xC0,                          // mov cr0,eax
        0x66, 0xEA, 0x1E, 0x00, 0x0F, 0x00, 0x08, 0x00,  // jmp 0x08:0xf001e
        // 32-bit, at 0xf001e
        0x66, 0xB8, 0x10, 0x00,                    // mov ax,0x10
        0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0,        // mov ds/es/ss,ax
        0xBF, 0x00, 0x10, 0x00, 0x00,              // mov edi,0x1000
        0x31, 0xC0, 0xB9, 0x00, 0x0C, 0x00, 0x00,  // xor eax,eax; mov ecx,0xc00
        0xF3, 0xAB,                                // rep stosd (clear 0x1000-0x3fff)
        0xC7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00,  // PML4[0] = 0x2003
        0xC7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00,  // PDPT[0] = 0x3003
        0xC7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00,  // PD[0] = 2 MiB page at 0
        0x0F, 0x20, 0xE0, 0x83, 0xC8, 0x20, 0x0F, 0x22, 0xE0,        // cr4 |= PAE
        0xB8, 0x00, 0x10, 0x00, 0x00, 0x0F, 0x22, 0xD8,              // cr3 = 0x1000
        0xB9, 0x80, 0x00, 0x00, 0xC0, 0x0F, 0x32,                    // rdmsr EFER
        0x0D, 0x00, 0x01, 0x00, 0x00, 0x0F, 0x30,                    // EFER |= LME; wrmsr
        0x0F, 0x20, 0xC0, 0x0D, 0x00, 0x00, 0x00, 0x80, 0x0F, 0x22, 0xC0,  // cr0 |= PG
        0xEA, 0x85, 0x00, 0x0F, 0x00, 0x18, 0x00,  // jmp 0x18:0xf0085
        // 64-bit, at 0xf0085
        0xB0, 0x2A, 0xE6, 0xF4,                    // mov al,0x2a; out 0xf4,al
        0xF4, 0xEB, 0xFD,                          // hlt; jmp back
        0x90, 0x90, 0x90, 0x90,                    // nop to 0xf0090
        // GDT at 0xf0090: null, code32, data32, code64
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00,
        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x92, 0xCF, 0x00,
        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xAF, 0x00,
        // GDT descriptor at 0xf00b0: limit 31, base 0xf0090
        0x1F, 0x00, 0x90, 0x00, 0x0F, 0x00,
    };
    static_assert(sizeof(code) == 0xB6, "offsets above are absolute");
    static const unsigned char reset[] = {0xEA, 0x00, 0x00, 0x00, 0xF0};  // jmp 0xf000:0
    std::string fw(65536, '\xf4');  // hlt everywhere else
    fw.replace(0, sizeof(code), reinterpret_cast<const char *>(code), sizeof(code));
    fw.replace(0xFFF0, sizeof(reset), reinterpret_cast<const char *>(reset), sizeof(reset));
    return fw;
}

}  // namespace

std::string run_probe_guest(const std::string &binary, const std::string &accel, const ProbeOptions &options) {
    ProbeDir dir;
    if (dir.path.empty()) return "cannot create a directory for the KVM test guest";
    std::string fw = dir.path + "/probe.bin";
    if (!file::write_atomic(fw, probe_firmware(), 0600)) return "cannot write the KVM test guest's firmware";
    Child child;
    std::vector<std::string> args = {binary, "-no-user-config", "-nodefaults", "-display", "none", "-machine",
                                     "pc", "-accel", accel, "-m", "16", "-bios", fw, "-no-reboot", "-device",
                                     "isa-debug-exit,iobase=0xf4,iosize=0x04"};
    if (auto st = child.spawn(args, dir.path + "/qemu.log"); !st) return st.error().detail;
    auto limit = std::min(options.timeout, std::chrono::milliseconds(10000));
    int status = child.wait_exit(limit);
    if (status == kProbeExitStatus) return {};
    if (child.running())
        return "a test guest under -accel " + accel + " did not reach long mode within " +
               std::to_string(limit.count() / 1000) + " s (guests hang under this accelerator on this host)";
    return "a test guest under -accel " + accel + " did not run to its end (QEMU exit status " +
           std::to_string(status) + "): " + read_log(dir.path + "/qemu.log");
}

namespace {

Result<int64_t> binary_mtime(const std::string &binary) {
    struct stat sb;
    if (::stat(binary.c_str(), &sb) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "Cannot check QEMU binary " + binary));
    return int64_t(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
}

}  // namespace

void probe_kvm(const std::string &binary, const ProbeOptions &options, QemuCaps &caps) {
    UniqueFd fd(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
    caps.kvm_device_opens = fd.valid();
    if (!fd.valid()) {
        caps.kvm_reason = std::string("cannot open /dev/kvm: ") + std::strerror(errno);
        return;
    }
    fd.reset();
    Status st = with_qmp(binary, {"-accel", "kvm"}, options, [&](Monitor &mon, pid_t) -> Status {
        KvmInfo kvm = TRY(mon.query_kvm());
        caps.kvm_accel_starts = kvm.enabled;
        return ok();
    });
    if (!st) {
        VS_INFO("QEMU %s does not start with KVM: %s", binary.c_str(), st.error().message().c_str());
        caps.kvm_reason = "QEMU does not start with -accel kvm: " + st.error().detail;
        return;
    }
    if (!caps.kvm_accel_starts) {
        caps.kvm_reason = "QEMU started with -accel kvm reports KVM disabled";
        return;
    }
    caps.kvm_reason = run_probe_guest(binary, "kvm", options);
    caps.kvm_runs_guest_code = caps.kvm_reason.empty();
}

Result<QemuCaps> probe_running(Monitor &monitor, const std::string &binary) {
    QemuCaps caps;
    caps.binary = binary;
    TRY(probe_schema(monitor, caps));
    return caps;
}

Result<QemuCaps> probe_qemu(const std::string &binary, const ProbeOptions &options) {
    QemuCaps caps;
    caps.binary = binary;
    caps.mtime_ns = TRY(binary_mtime(binary));
    TRY(probe_main(binary, options, caps));
    if (options.probe_kvm) probe_kvm(binary, options, caps);
    VS_INFO("QEMU %s %s: %zu commands, %zu migration capabilities, kvm %d/%d/%d, snapshot gate %s%s", binary.c_str(),
            caps.version().c_str(), caps.commands.size(), caps.migration_capabilities.size(), caps.kvm_device_opens,
            caps.kvm_accel_starts, caps.kvm_runs_guest_code, caps.background_snapshot_gate_safe ? "safe" : "unsafe: ",
            caps.gate_reason.c_str());
    return caps;
}

Result<std::shared_ptr<const QemuCaps>> QemuCapsCache::get(const std::string &binary) {
    int64_t mtime = TRY(binary_mtime(binary));
    {
        std::lock_guard lock(mu_);
        auto it = cache_.find(binary);
        if (it != cache_.end() && it->second->mtime_ns == mtime) return it->second;
    }
    // Probing takes seconds: not under the lock. Two racing callers both
    // probe; the result is the same. A host stalled for longer than a probe
    // run may take (seen once in CI: no reply to qmp_capabilities in 20 s)
    // gets one more try before the start that asked fails.
    auto probed = probe_qemu(binary, options_);
    if (!probed && probed.error().code == VIR_ERR_OPERATION_TIMEOUT) {
        VS_WARN("probing %s: %s; probing once more", binary.c_str(), probed.error().message().c_str());
        probed = probe_qemu(binary, options_);
    }
    if (!probed) return fail(std::move(probed).error());
    QemuCaps caps = std::move(probed).value();
    auto shared = std::make_shared<const QemuCaps>(std::move(caps));
    std::lock_guard lock(mu_);
    ++probes_;
    cache_[binary] = shared;
    return shared;
}

int QemuCapsCache::probes() const {
    std::lock_guard lock(mu_);
    return probes_;
}

}  // namespace virtsnap::qemu
