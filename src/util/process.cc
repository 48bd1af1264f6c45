// process.cc - fork/exec with prepared state, pidfd-based waiting, and the
// run-to-completion helper used for qemu-img and friends.
#define LOG_MODULE "util.process"

#include "util/process.hh"

#include "util/log.hh"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace virtsnap::process {

namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int open_pidfd(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

ExitStatus translate(int wstatus) {
    ExitStatus s;
    if (WIFEXITED(wstatus)) {
        s.exited = true;
        s.code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        s.signal = WTERMSIG(wstatus);
    }
    return s;
}

// Resolves argv[0] in the parent so the child only calls execve().
std::string resolve_program(const std::string &name) {
    if (name.find('/') != std::string::npos) return name;
    GCharPtr found(g_find_program_in_path(name.c_str()));
    return found ? std::string(found.get()) : name;
}

std::vector<std::string> build_env(const SpawnOptions &opts) {
    std::vector<std::string> env;
    auto overridden = [&](std::string_view entry) {
        auto eq = entry.find('=');
        std::string_view key = entry.substr(0, eq);
        return std::any_of(opts.env.begin(), opts.env.end(), [&](auto &kv) { return kv.first == key; });
    };
    if (!opts.clear_env) {
        for (char **e = environ; e && *e; ++e)
            if (!overridden(*e)) env.emplace_back(*e);
    }
    for (auto &[k, v] : opts.env) env.push_back(k + "=" + v);
    return env;
}

Result<UniqueFd> open_output(const Output &o, virErrorDomain domain) {
    int fd = -1;
    if (o.kind == Output::Kind::Null) {
        fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    } else if (o.kind == Output::Kind::File) {
        fd = ::open(o.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (o.append ? O_APPEND : O_TRUNC), 0600);
    } else {
        return UniqueFd();
    }
    if (fd < 0)
        return fail(make_system_error(domain, errno, "failed to open file '" +
                                      (o.path.empty() ? std::string("/dev/null") : o.path) + "'"));
    return UniqueFd(fd);
}

// Tells the parent why exec did not happen, then exits.
[[noreturn]] void child_fail(int report_fd, int err) {
    ssize_t r = ::write(report_fd, &err, sizeof err);
    (void)r;
    ::_exit(127);
}

// The forked child: everything here is async-signal-safe.
[[noreturn]] void child_exec(const char *path, char *const argv[], char *const envp[], const char *cwd,
                             int in_fd, int out_fd, int err_fd, bool err_to_out, bool daemonize,
                             const std::pair<int, int> *pass, size_t npass, int report_fd) {
    auto die = [report_fd](int err) { child_fail(report_fd, err); };
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);

    if (daemonize && ::setsid() < 0) die(errno);

    // First move every passed fd above all targets, so a dup2 onto a target
    // can never clobber a source that is still to be moved.
    int top = 3;
    for (size_t i = 0; i < npass; ++i) top = std::max({top, pass[i].first + 1, pass[i].second + 1});
    int moved[64];
    if (npass > 64) die(EMFILE);
    for (size_t i = 0; i < npass; ++i) {
        moved[i] = ::fcntl(pass[i].first, F_DUPFD_CLOEXEC, top);
        if (moved[i] < 0) die(errno);
    }
    if (in_fd >= 0 && ::dup2(in_fd, 0) < 0) die(errno);
    if (out_fd >= 0 && ::dup2(out_fd, 1) < 0) die(errno);
    if (err_to_out) {
        if (::dup2(1, 2) < 0) die(errno);
    } else if (err_fd >= 0 && ::dup2(err_fd, 2) < 0) {
        die(errno);
    }
    for (size_t i = 0; i < npass; ++i)
        if (::dup2(moved[i], pass[i].second) < 0) die(errno);

    // Everything else above stderr is closed at exec (the report pipe too, which
    // tells the parent exec succeeded).
    bool keep[1024] = {};
    for (size_t i = 0; i < npass; ++i)
        if (pass[i].second < 1024) keep[pass[i].second] = true;
    unsigned first = 3;
    for (unsigned fd = 3; fd <= 1024; ++fd) {
        if (fd == 1024 || keep[fd]) {
            if (fd > first && ::syscall(SYS_close_range, first, fd - 1, 4 /* CLOSE_RANGE_CLOEXEC */) < 0) {
                for (unsigned f = first; f < fd; ++f) ::fcntl(int(f), F_SETFD, FD_CLOEXEC);
            }
            first = fd + 1;
        }
    }
    ::syscall(SYS_close_range, 1024u, ~0u, 4);

    if (cwd && ::chdir(cwd) < 0) die(errno);
    ::execve(path, argv, envp);
    child_fail(report_fd, errno);
}

Status set_nonblock(int fd) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return fail(make_system_error(VIR_FROM_NONE, errno, "failed to set pipe non-blocking"));
    return ok();
}

}  // namespace

std::string ExitStatus::describe() const {
    if (exited) return "exit status " + std::to_string(code);
    return "fatal signal " + std::to_string(signal);
}

std::string argv_to_string(const std::vector<std::string> &argv) {
    std::string s;
    for (auto &a : argv) {
        if (!s.empty()) s += ' ';
        bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                       "0123456789-_=+,./:@%") == std::string::npos;
        if (plain) {
            s += a;
        } else {
            s += '\'';
            for (char c : a) {
                if (c == '\'') s += "'\\''";
                else s += c;
            }
            s += '\'';
        }
    }
    return s;
}

Child::Child(Child &&o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), out_pipe_(std::move(o.out_pipe_)),
      err_pipe_(std::move(o.err_pipe_)), status_(std::move(o.status_)), command_text_(std::move(o.command_text_)) {}

Child &Child::operator=(Child &&o) noexcept {
    if (this != &o) {
        this->~Child();
        new (this) Child(std::move(o));
    }
    return *this;
}

Child::~Child() {
    if (pid_ > 0 && !status_) {
        VS_DEBUG("killing unreaped child %d (%s)", int(pid_), command_text_.c_str());
        ::kill(pid_, SIGKILL);
        int ws;
        while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {}
    }
}

Result<Child> Child::spawn(const SpawnOptions &opts) {
    if (opts.argv.empty())
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "no program to execute");

    // Targets 0-2 are the standard streams; the child only keeps fds below 1024.
    for (auto &[fd, target] : opts.pass_fds)
        if (fd < 0 || target < 3 || target >= 1024)
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE,
                        "cannot pass fd " + std::to_string(fd) + " as " + std::to_string(target));
    if (opts.pass_fds.size() > 64)
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "too many file descriptors to pass");

    Child c;
    c.command_text_ = argv_to_string(opts.argv);
    std::string path = resolve_program(opts.argv[0]);
    std::vector<std::string> env = build_env(opts);
    std::vector<char *> argvp, envp;
    for (auto &a : opts.argv) argvp.push_back(const_cast<char *>(a.c_str()));
    argvp.push_back(nullptr);
    for (auto &e : env) envp.push_back(const_cast<char *>(e.c_str()));
    envp.push_back(nullptr);

    UniqueFd in_fd;
    if (!opts.stdin_data.empty()) {
        // A memfd rather than a pipe: no writer has to keep up with the child.
        in_fd.reset(::memfd_create("virtsnap-stdin", MFD_CLOEXEC));
        if (!in_fd.valid())
            return fail(make_system_error(VIR_FROM_NONE, errno, "cannot create stdin for child"));
        size_t done = 0;
        while (done < opts.stdin_data.size()) {
            ssize_t n = ::write(in_fd.get(), opts.stdin_data.data() + done, opts.stdin_data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(make_system_error(VIR_FROM_NONE, errno, "cannot write stdin for child"));
            done += size_t(n);
        }
        ::lseek(in_fd.get(), 0, SEEK_SET);
    } else {
        in_fd.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    }

    UniqueFd out_fd = TRY(open_output(opts.out, VIR_FROM_NONE));
    UniqueFd err_fd = TRY(open_output(opts.err, VIR_FROM_NONE));
    auto make_pipe = [](UniqueFd &read_end, UniqueFd &write_end) -> Status {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) < 0)
            return fail(make_system_error(VIR_FROM_NONE, errno, "cannot create pipe"));
        read_end.reset(p[0]);
        write_end.reset(p[1]);
        return ok();
    };
    if (opts.out.kind == Output::Kind::Capture) TRY(make_pipe(c.out_pipe_, out_fd));
    if (opts.err.kind == Output::Kind::Capture && !opts.stderr_to_stdout) TRY(make_pipe(c.err_pipe_, err_fd));
    UniqueFd report_read, report_write;
    TRY(make_pipe(report_read, report_write));

    pid_t pid = ::fork();
    if (pid < 0) return fail(make_system_error(VIR_FROM_NONE, errno, "cannot fork child process"));
    if (pid == 0) {
        child_exec(path.c_str(), argvp.data(), envp.data(), opts.cwd.empty() ? nullptr : opts.cwd.c_str(),
                   in_fd.get(), out_fd.get(), err_fd.get(), opts.stderr_to_stdout, opts.daemonize,
                   opts.pass_fds.data(), opts.pass_fds.size(), report_write.get());
    }
    c.pid_ = pid;
    report_write.reset();
    c.pidfd_.reset(open_pidfd(pid));

    int child_errno = 0;
    ssize_t n;
    while ((n = ::read(report_read.get(), &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {}
    if (n > 0) {
        (void)c.reap(true);
        return fail(make_system_error(VIR_FROM_NONE, child_errno, "cannot execute binary " + opts.argv[0]));
    }
    VS_DEBUG("spawned %d: %s", int(pid), c.command_text_.c_str());
    return c;
}

Result<std::optional<ExitStatus>> Child::reap(bool block) {
    if (status_) return status_;
    if (pid_ <= 0) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "no child process to wait for");
    int ws = 0;
    pid_t r;
    while ((r = ::waitpid(pid_, &ws, block ? 0 : WNOHANG)) < 0 && errno == EINTR) {}
    if (r < 0)
        return fail(make_system_error(VIR_FROM_NONE, errno,
                                      "unable to wait for process " + std::to_string(pid_)));
    if (r == 0) return std::optional<ExitStatus>();
    status_ = translate(ws);
    pidfd_.reset();
    return status_;
}

Result<std::optional<ExitStatus>> Child::wait_for(milliseconds timeout) {
    if (status_) return status_;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        auto st = TRY(reap(false));
        if (st) return st;
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return std::optional<ExitStatus>();
        if (pidfd_.valid()) {
            struct pollfd p = {pidfd_.get(), POLLIN, 0};
            ::poll(&p, 1, int(std::min<long long>(left, INT_MAX)));
        } else {
            ::usleep(useconds_t(std::min<long long>(left, 10) * 1000));
        }
    }
}

Result<ExitStatus> Child::wait() {
    auto st = TRY(reap(true));
    return *st;
}

Status Child::signal(int signum) {
    if (status_) return ok();
    if (pid_ <= 0) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "no child process to signal");
    if (::kill(pid_, signum) < 0 && errno != ESRCH)
        return fail(make_system_error(VIR_FROM_NONE, errno,
                                      "Failed to kill process " + std::to_string(pid_)));
    return ok();
}

Result<ExitStatus> Child::terminate(milliseconds grace) {
    if (status_) return *status_;
    TRY(signal(SIGTERM));
    auto st = TRY(wait_for(grace));
    if (st) return *st;
    VS_WARN("process %d did not exit after SIGTERM, sending SIGKILL", int(pid_));
    TRY(signal(SIGKILL));
    return wait();
}

pid_t Child::detach() {
    pidfd_.reset();
    return std::exchange(pid_, -1);
}

Result<ExitStatus> Child::communicate(std::string *out, std::string *err, milliseconds timeout) {
    if (out_pipe_.valid()) TRY(set_nonblock(out_pipe_.get()));
    if (err_pipe_.valid()) TRY(set_nonblock(err_pipe_.get()));
    auto deadline = Clock::now() + timeout;
    char buf[65536];
    while (out_pipe_.valid() || err_pipe_.valid()) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            (void)signal(SIGKILL);
            (void)wait();
            return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE,
                        "Child process (" + command_text_ + ") timed out after " +
                        std::to_string(timeout.count()) + " ms");
        }
        struct pollfd fds[2];
        int nfds = 0;
        for (auto *p : {&out_pipe_, &err_pipe_})
            if (p->valid()) fds[nfds++] = {p->get(), POLLIN, 0};
        int r = ::poll(fds, nfds_t(nfds), int(std::min<long long>(left, INT_MAX)));
        if (r < 0 && errno != EINTR)
            return fail(make_system_error(VIR_FROM_NONE, errno, "unable to poll on child"));
        for (auto [pipe, sink] : {std::pair{&out_pipe_, out}, std::pair{&err_pipe_, err}}) {
            if (!pipe->valid()) continue;
            ssize_t n = ::read(pipe->get(), buf, sizeof buf);
            if (n > 0) {
                if (sink) sink->append(buf, size_t(n));
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                pipe->reset();
            }
        }
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    auto st = TRY(wait_for(std::max(left, milliseconds(0))));
    if (!st) {
        (void)signal(SIGKILL);
        (void)wait();
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE,
                    "Child process (" + command_text_ + ") timed out after " +
                    std::to_string(timeout.count()) + " ms");
    }
    return *st;
}

Result<RunOutput> run_capture(SpawnOptions opts, milliseconds timeout) {
    opts.out = Output::capture();
    if (!opts.stderr_to_stdout) opts.err = Output::capture();
    Child c = TRY(Child::spawn(opts));
    RunOutput r;
    r.status = TRY(c.communicate(&r.out, &r.err, timeout));
    return r;
}

Result<std::string> run(SpawnOptions opts, milliseconds timeout) {
    std::string text = argv_to_string(opts.argv);
    RunOutput r = TRY(run_capture(std::move(opts), timeout));
    if (!r.status.success()) {
        std::string errtext = r.err;
        while (!errtext.empty() && (errtext.back() == '\n' || errtext.back() == ' ')) errtext.pop_back();
        return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE,
                    "Child process (" + text + ") unexpected " + r.status.describe() +
                    (errtext.empty() ? "" : ": " + errtext));
    }
    return std::move(r.out);
}

Result<std::string> run(std::vector<std::string> argv, milliseconds timeout) {
    SpawnOptions o;
    o.argv = std::move(argv);
    return run(std::move(o), timeout);
}

namespace {

bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; ++s)
        if (*s < '0' || *s > '9') return false;
    return true;
}

bool comm_matches(const char *pid, const std::vector<std::string> &prefixes) {
    char comm[64] = {};
    UniqueFd fd(::open((std::string("/proc/") + pid + "/comm").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || ::read(fd.get(), comm, sizeof comm - 1) <= 0) return false;
    std::string_view c(comm);
    for (const auto &p : prefixes)
        if (c.starts_with(p)) return true;
    return false;
}

}  // namespace

std::optional<pid_t> process_holding_file(uint64_t dev, uint64_t ino, const std::vector<std::string> &comm_prefixes) {
    DIR *proc = ::opendir("/proc");
    if (!proc) return std::nullopt;
    std::optional<pid_t> found;
    while (dirent *e = ::readdir(proc)) {
        if (!all_digits(e->d_name) || !comm_matches(e->d_name, comm_prefixes)) continue;
        std::string dir = std::string("/proc/") + e->d_name + "/fd";
        DIR *fds = ::opendir(dir.c_str());
        if (!fds) continue;
        while (dirent *f = ::readdir(fds)) {
            if (!all_digits(f->d_name)) continue;
            struct stat st {};
            if (::stat((dir + "/" + f->d_name).c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
                found = pid_t(std::atoi(e->d_name));
                break;
            }
        }
        ::closedir(fds);
        if (found) break;
    }
    ::closedir(proc);
    return found;
}

bool pid_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (::kill(pid, 0) == 0) return true;
    return errno == EPERM;
}

Status kill_pid(pid_t pid, milliseconds grace) {
    if (pid <= 0) return fail(VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, "invalid process id " + std::to_string(pid));
    UniqueFd pidfd(open_pidfd(pid));
    if (!pidfd.valid()) {
        if (errno == ESRCH) return ok();
        return fail(make_system_error(VIR_FROM_NONE, errno, "Failed to kill process " + std::to_string(pid)));
    }
    auto gone = [&](milliseconds t) {
        struct pollfd p = {pidfd.get(), POLLIN, 0};
        return ::poll(&p, 1, int(t.count())) > 0;
    };
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGTERM, nullptr, 0) < 0 && errno != ESRCH)
        return fail(make_system_error(VIR_FROM_NONE, errno, "Failed to kill process " + std::to_string(pid)));
    if (gone(grace)) return ok();
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) < 0 && errno != ESRCH)
        return fail(make_system_error(VIR_FROM_NONE, errno, "Failed to kill process " + std::to_string(pid)));
    if (!gone(milliseconds(5000)))
        return fail(VIR_ERR_SYSTEM_ERROR, VIR_FROM_NONE,
                    "Failed to terminate process " + std::to_string(pid) + " with SIGKILL");
    return ok();
}

}  // namespace virtsnap::process
