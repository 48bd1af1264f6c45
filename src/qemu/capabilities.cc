// capabilities.cc - probing a QEMU binary over QMP, and the per-binary cache.

#include "qemu/capabilities.hh"
#include "qemu/monitor.hh"
#include "qemu/monitor_json.hh"
#include "qemu/qmp_channel.hh"

#define LOG_MODULE "qemu.capabilities"
#include "util/file.hh"
#include "util/log.hh"
#include "util/raii.hh"

#include <gio/gio.h>

#include <cerrno>
#include <fstream>
#include <thread>

#include <fcntl.h>
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
        GError *raw = nullptr;
        gchar *p = g_dir_make_tmp("virtsnap-caps-XXXXXX", &raw);
        err.reset(raw);
        if (p) path = p;
        g_free(p);
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
            if (g_subprocess_get_identifier(proc_)) g_subprocess_force_exit(proc_);
            g_subprocess_wait(proc_, nullptr, nullptr);
            g_object_unref(proc_);
        }
    }
    Status spawn(const std::vector<std::string> &args, const std::string &log_path) {
        std::vector<const gchar *> argv;
        for (const auto &a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        GSubprocessLauncher *launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDIN_INHERIT);
        g_subprocess_launcher_set_flags(launcher, G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
        g_subprocess_launcher_set_stderr_file_path(launcher, log_path.c_str());
        GError *err = nullptr;
        proc_ = g_subprocess_launcher_spawnv(launcher, argv.data(), &err);
        g_object_unref(launcher);
        if (!proc_) {
            std::string msg = err ? err->message : "unknown error";
            if (err) g_error_free(err);
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_QEMU, "Failed to probe QEMU binary: " + msg);
        }
        return ok();
    }
    // GLib notices the exit on its worker thread and clears the identifier.
    bool running() const { return proc_ && g_subprocess_get_identifier(proc_); }
    // Waits for the exit; returns the exit status or -1 (killed by a signal or timeout).
    int wait_exit(std::chrono::milliseconds limit) {
        auto deadline = Clock::now() + limit;
        while (running() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (running()) return -1;
        g_subprocess_wait(proc_, nullptr, nullptr);
        return g_subprocess_get_if_exited(proc_) ? g_subprocess_get_exit_status(proc_) : -1;
    }

private:
    GSubprocess *proc_ = nullptr;
};

std::string read_log(const std::string &path) {
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > 2000) text.resize(2000);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

// Starts `binary` with no guest and a QMP socket, runs `probe` on the monitor,
// then quits QEMU.
Status with_qmp(const std::string &binary, const std::vector<std::string> &extra, const ProbeOptions &options,
                const std::function<Status(Monitor &)> &probe) {
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
    Status result = probe(*mon);
    // QEMU closes the monitor as it quits, so the reply may never come.
    Status quit = mon->quit();
    if (!quit) VS_DEBUG("quit during probe: %s", quit.error().message().c_str());
    mon.reset();
    child.wait_exit(std::chrono::milliseconds(5000));
    return result;
}

Status probe_main(const std::string &binary, const ProbeOptions &options, QemuCaps &caps) {
    return with_qmp(binary, {}, options, [&](Monitor &mon) -> Status {
        const QmpGreeting &g = mon.greeting();
        caps.major = g.major;
        caps.minor = g.minor;
        caps.micro = g.micro;
        caps.package = g.package;
        QValue schema = TRY(mon.query_qmp_schema());
        for (auto &n : TRY(qmpjson::parse_schema_names(schema, "command"))) caps.commands.insert(std::move(n));
        for (auto &n : TRY(qmpjson::parse_schema_names(schema, "event"))) caps.events.insert(std::move(n));
        for (const auto &c : TRY(mon.query_migrate_capabilities())) caps.migration_capabilities.insert(c.capability);
        caps.machines = TRY(mon.query_machines());
        for (const auto &m : caps.machines)
            if (m.is_default) caps.default_machine = m.name;
        return ok();
    });
}

// A 64 KiB firmware whose reset vector writes 0x2a to isa-debug-exit at 0xf4:
// QEMU then exits with status (0x2a << 1) | 1.
constexpr int kProbeExitStatus = (0x2a << 1) | 1;
std::string probe_firmware() {
    std::string fw(65536, '\xf4');  // hlt everywhere else
    const unsigned char code[] = {0xB0, 0x2A, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD};  // mov al,0x2a; out 0xf4,al; hlt; jmp
    fw.replace(0xFFF0, sizeof(code), reinterpret_cast<const char *>(code), sizeof(code));
    return fw;
}

bool kvm_runs_code(const std::string &binary, const ProbeOptions &options) {
    ProbeDir dir;
    if (dir.path.empty()) return false;
    std::string fw = dir.path + "/probe.bin";
    if (!file::write_atomic(fw, probe_firmware(), 0600)) return false;
    Child child;
    std::vector<std::string> args = {binary, "-no-user-config", "-nodefaults", "-display", "none", "-machine",
                                     "pc", "-accel", "kvm", "-m", "16", "-bios", fw, "-no-reboot", "-device",
                                     "isa-debug-exit,iobase=0xf4,iosize=0x04"};
    if (!child.spawn(args, dir.path + "/qemu.log")) return false;
    auto limit = std::min(options.timeout, std::chrono::milliseconds(10000));
    return child.wait_exit(limit) == kProbeExitStatus;
}

void probe_kvm(const std::string &binary, const ProbeOptions &options, QemuCaps &caps) {
    int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
    caps.kvm_device_opens = fd >= 0;
    if (fd >= 0) ::close(fd);
    if (!caps.kvm_device_opens) return;
    Status st = with_qmp(binary, {"-accel", "kvm"}, options, [&](Monitor &mon) -> Status {
        KvmInfo kvm = TRY(mon.query_kvm());
        caps.kvm_accel_starts = kvm.enabled;
        return ok();
    });
    if (!st) VS_INFO("QEMU %s does not start with KVM: %s", binary.c_str(), st.error().message().c_str());
    if (caps.kvm_accel_starts) caps.kvm_runs_guest_code = kvm_runs_code(binary, options);
}

Result<int64_t> binary_mtime(const std::string &binary) {
    struct stat sb;
    if (::stat(binary.c_str(), &sb) < 0)
        return fail(make_system_error(VIR_FROM_QEMU, errno, "Cannot check QEMU binary " + binary));
    return int64_t(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
}

}  // namespace

Result<QemuCaps> probe_qemu(const std::string &binary, const ProbeOptions &options) {
    QemuCaps caps;
    caps.binary = binary;
    caps.mtime_ns = TRY(binary_mtime(binary));
    TRY(probe_main(binary, options, caps));
    if (options.probe_kvm) probe_kvm(binary, options, caps);
    VS_INFO("QEMU %s %s: %zu commands, %zu migration capabilities, kvm %d/%d/%d", binary.c_str(),
            caps.version().c_str(), caps.commands.size(), caps.migration_capabilities.size(), caps.kvm_device_opens,
            caps.kvm_accel_starts, caps.kvm_runs_guest_code);
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
    // probe; the result is the same.
    QemuCaps caps = TRY(probe_qemu(binary, options_));
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
