// process.hh - child processes: spawning, waiting, killing, and running tools
// to completion.
//
// Child owns what it spawned: unless detached, its destructor kills and reaps the
// process, so no error path leaks a zombie or a stray QEMU. Daemonized children
// (QEMU) get their own session and no parent-death signal, so they outlive the
// daemon once detached. Everything the forked child needs is prepared before
// fork(), because in a threaded daemon only async-signal-safe calls are allowed
// between fork() and exec().
#pragma once

#include "util/raii.hh"
#include "util/result.hh"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace virtsnap::process {

// How a child ended, as waitpid() reports it.
struct ExitStatus {
    bool exited = false;   // exited normally (code valid); otherwise killed by `signal`
    int code = 0;
    int signal = 0;

    bool success() const { return exited && code == 0; }
    // libvirt's wording: "exit status 1" / "fatal signal 9".
    std::string describe() const;
};

// Where a standard stream of the child goes.
struct Output {
    enum class Kind { Inherit, Null, File, Capture };
    Kind kind = Kind::Inherit;
    std::string path;      // for File
    bool append = true;    // for File: O_APPEND (logs) or O_TRUNC

    static Output inherit() { return {}; }
    static Output null() { return {Kind::Null, {}, false}; }
    static Output file(std::string p, bool append = true) { return {Kind::File, std::move(p), append}; }
    static Output capture() { return {Kind::Capture, {}, false}; }
};

struct SpawnOptions {
    std::vector<std::string> argv;       // argv[0] is looked up in PATH when it has no '/'
    bool clear_env = false;              // start from an empty environment instead of ours
    std::vector<std::pair<std::string, std::string>> env;  // set (or override) these
    std::string cwd;                     // "" = inherit
    // File descriptors the child keeps: `fd` in the parent appears as `target`.
    // Every other descriptor above stderr is closed in the child.
    std::vector<std::pair<int, int>> pass_fds;
    Output out, err;
    bool stderr_to_stdout = false;       // 2>&1 (after `out` is set up)
    std::string stdin_data;              // written to the child's stdin, then closed
    // New session (setsid): the child is immune to our terminal and process
    // group signals and is not killed when the daemon exits.
    bool daemonize = false;
};

class Child {
public:
    Child() = default;
    Child(Child &&o) noexcept;
    Child &operator=(Child &&o) noexcept;
    Child(const Child &) = delete;
    Child &operator=(const Child &) = delete;
    // Kills (SIGKILL) and reaps a still-running child unless it was detached.
    ~Child();

    [[nodiscard]] static Result<Child> spawn(const SpawnOptions &opts);

    pid_t pid() const { return pid_; }
    bool reaped() const { return status_.has_value(); }
    const std::optional<ExitStatus> &status() const { return status_; }

    // Waits up to `timeout` for the child to end; nullopt when it is still running.
    [[nodiscard]] Result<std::optional<ExitStatus>> wait_for(std::chrono::milliseconds timeout);
    [[nodiscard]] Result<ExitStatus> wait();
    // SIGTERM, then SIGKILL if it has not ended after `grace`; reaps it.
    [[nodiscard]] Result<ExitStatus> terminate(std::chrono::milliseconds grace = std::chrono::seconds(10));
    // Sends a signal without waiting.
    [[nodiscard]] Status signal(int signum);

    // Pipes of Output::Capture streams (-1 otherwise); the reader owns draining them.
    int stdout_fd() const { return out_pipe_.get(); }
    int stderr_fd() const { return err_pipe_.get(); }
    UniqueFd take_stdout() { return std::move(out_pipe_); }
    UniqueFd take_stderr() { return std::move(err_pipe_); }

    // Reads the captured streams to EOF while waiting for the child to end;
    // kills it when `timeout` passes first (and reports that as an error).
    [[nodiscard]] Result<ExitStatus> communicate(std::string *out, std::string *err,
                                                 std::chrono::milliseconds timeout);

    // Gives up ownership: the process is neither killed nor reaped by us.
    pid_t detach();

    // argv joined for messages, as libvirt's virCommandToString.
    const std::string &command_text() const { return command_text_; }

private:
    [[nodiscard]] Result<std::optional<ExitStatus>> reap(bool block);

    pid_t pid_ = -1;
    UniqueFd pidfd_;
    UniqueFd out_pipe_, err_pipe_;
    std::optional<ExitStatus> status_;
    std::string command_text_;
};

struct RunOutput {
    ExitStatus status;
    std::string out, err;
};

// Runs a tool to completion, capturing stdout and stderr; fails only when it
// cannot be started or exceeds the timeout (then it is killed).
[[nodiscard]] Result<RunOutput> run_capture(SpawnOptions opts,
                                            std::chrono::milliseconds timeout = std::chrono::minutes(10));

// Runs a tool to completion and returns its stdout. A non-zero exit is an
// internal error quoting the tool's stderr, as libvirt's virCommandRun:
// "Child process (qemu-img ...) unexpected exit status 1: <stderr>".
[[nodiscard]] Result<std::string> run(SpawnOptions opts,
                                      std::chrono::milliseconds timeout = std::chrono::minutes(10));
[[nodiscard]] Result<std::string> run(std::vector<std::string> argv,
                                      std::chrono::milliseconds timeout = std::chrono::minutes(10));

// For processes we did not spawn (a QEMU found again after a daemon restart).
bool pid_alive(pid_t pid);
// The first process whose comm starts with one of `comm_prefixes` and that
// has a descriptor open on the file of device `dev`, inode `ino` (scans /proc).
std::optional<pid_t> process_holding_file(uint64_t dev, uint64_t ino, const std::vector<std::string> &comm_prefixes);
// SIGTERM, then SIGKILL after `grace`; waits until the pid is gone.
[[nodiscard]] Status kill_pid(pid_t pid, std::chrono::milliseconds grace = std::chrono::seconds(10));

// Shell-style quoting of an argv for messages and logs.
std::string argv_to_string(const std::vector<std::string> &argv);

}  // namespace virtsnap::process
