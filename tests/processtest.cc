// processtest.cc - tests for util/process: spawning with env/cwd/fds/outputs,
// exit statuses, timeouts, SIGTERM/SIGKILL escalation, daemonized children,
// and run()'s libvirt-style errors. Uses /bin/sh as the child.

#include "tap.hh"

#include "util/file.hh"
#include "util/process.hh"

#include <csignal>
#include <string>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::process;
using namespace std::chrono_literals;

namespace {

SpawnOptions sh(const std::string &script) {
    SpawnOptions o;
    o.argv = {"sh", "-c", script};
    return o;
}

void test_run(test::Tap &t) {
    auto r = run(std::vector<std::string>{"echo", "hello"});
    t.ok(r.has_value(), "run echo succeeds");
    if (r) t.eq(*r, std::string("hello\n"), "run returns stdout");

    auto bad = run(sh("echo oops >&2; exit 3"));
    t.ok(!bad.has_value(), "non-zero exit is an error");
    if (!bad) {
        t.eq(int(bad.error().code), int(VIR_ERR_INTERNAL_ERROR), "error is internal error");
        t.eq(bad.error().detail, std::string("Child process (sh -c 'echo oops >&2; exit 3') unexpected exit status 3: oops"),
             "error quotes command, status and stderr");
    }

    auto missing = run(std::vector<std::string>{"/nonexistent/tool", "x"});
    t.ok(!missing.has_value(), "missing binary is an error");
    if (!missing) {
        t.eq(int(missing.error().code), int(VIR_ERR_SYSTEM_ERROR), "missing binary is a system error");
        t.ok(missing.error().detail.find("cannot execute binary /nonexistent/tool") == 0, "missing binary wording",
             missing.error().detail);
    }

    auto sig = run_capture(sh("kill -9 $$"));
    t.ok(sig && !sig->status.exited && sig->status.signal == SIGKILL, "signal death reported");
    if (sig) t.eq(sig->status.describe(), std::string("fatal signal 9"), "signal death described as libvirt");

    auto cap = run_capture(sh("echo out; echo err >&2; exit 0"));
    t.ok(cap && cap->out == "out\n" && cap->err == "err\n", "stdout and stderr captured separately");

    SpawnOptions merged = sh("echo a; echo b >&2");
    merged.stderr_to_stdout = true;
    auto m = run(merged);
    t.ok(m && *m == "a\nb\n", "stderr_to_stdout merges streams");

    // More output than a pipe buffer holds must not deadlock.
    auto big = run(sh("head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2"));
    t.ok(big && big->size() == 1000000, "large output captured in full");

    SpawnOptions in = sh("cat");
    in.stdin_data = std::string(200000, 'x');
    auto echoed = run(in);
    t.ok(echoed && echoed->size() == 200000, "stdin data delivered in full");

    auto slow = run(sh("exec sleep 5"), 200ms);
    t.ok(!slow.has_value() && slow.error().detail.find("timed out") != std::string::npos, "run timeout kills");
}

void test_env_cwd(test::Tap &t) {
    SpawnOptions o = sh("echo \"$VS_A:$VS_B:${HOME:-none}\"; pwd");
    o.clear_env = true;
    o.env = {{"VS_A", "1"}, {"VS_B", "two words"}, {"PATH", "/usr/bin:/bin"}};
    o.cwd = "/tmp";
    auto r = run(o);
    t.ok(r.has_value(), "env/cwd run succeeds");
    if (r) t.eq(*r, std::string("1:two words:none\n/tmp\n"), "cleared env, set vars and cwd");

    setenv("VS_INHERITED", "yes", 1);
    SpawnOptions inh = sh("echo $VS_INHERITED:$VS_OVER");
    inh.env = {{"VS_OVER", "o"}};
    auto r2 = run(inh);
    t.ok(r2 && *r2 == "yes:o\n", "inherited env plus overrides");
}

void test_fds_and_files(test::Tap &t) {
    std::string dir = test::temp_dir("processtest");
    // Pass a pipe's write end as fd 3 and another as fd 7; nothing else leaks.
    int p1[2], p2[2];
    if (pipe2(p1, O_CLOEXEC) < 0 || pipe2(p2, O_CLOEXEC) < 0) {
        t.ok(false, "pipes");
        return;
    }
    UniqueFd r1(p1[0]), w1(p1[1]), r2(p2[0]), w2(p2[1]);
    SpawnOptions o = sh("echo three >&3; echo seven >&7; ls /proc/self/fd | sort -n | tr '\\n' ' '");
    o.pass_fds = {{w1.get(), 3}, {w2.get(), 7}};
    auto r = run(o);
    w1.reset();
    w2.reset();
    char buf[64] = {};
    ssize_t n1 = read(r1.get(), buf, sizeof buf - 1);
    t.ok(n1 > 0 && std::string(buf, size_t(n1)) == "three\n", "fd passed as 3");
    ssize_t n2 = read(r2.get(), buf, sizeof buf - 1);
    t.ok(n2 > 0 && std::string(buf, size_t(n2)) == "seven\n", "fd passed as 7");
    // ls itself opens one fd for the directory listing.
    t.ok(r && (*r == "0 1 2 3 7 " || *r == "0 1 2 3 4 7 " || *r == "0 1 2 3 3 7 "), "only passed fds are open",
         r ? *r : "");

    // Swapped targets: fd A -> B's number and B -> A's number.
    int q1[2], q2[2];
    if (pipe2(q1, 0) < 0 || pipe2(q2, 0) < 0) return;
    UniqueFd qr1(q1[0]), qw1(q1[1]), qr2(q2[0]), qw2(q2[1]);
    SpawnOptions swap = sh("echo to$0 >&" + std::to_string(qw2.get()) + "; echo x >&" + std::to_string(qw1.get()));
    swap.argv.push_back("A");
    swap.pass_fds = {{qw1.get(), qw2.get()}, {qw2.get(), qw1.get()}};
    auto sr = run(swap);
    qw1.reset();
    qw2.reset();
    ssize_t s1 = read(qr1.get(), buf, sizeof buf - 1);
    t.ok(sr && s1 > 0 && std::string(buf, size_t(s1)) == "toA\n", "swapped fd numbers do not clobber each other");

    std::string log = dir + "/log";
    SpawnOptions f = sh("echo first; echo second >&2");
    f.out = Output::file(log);
    f.err = Output::file(log);
    auto fr = Child::spawn(f);
    if (fr) (void)fr->wait();
    SpawnOptions f2 = sh("echo third");
    f2.out = Output::file(log);
    auto c = Child::spawn(f2);
    if (c) (void)c->wait();
    t.ok(fr.has_value(), "file output run");
    t.eq(test::read_text(log), std::string("first\nsecond\nthird\n"), "stdout/stderr appended to a file");

    SpawnOptions tr = sh("echo new");
    tr.out = Output::file(log, false);
    auto c2 = Child::spawn(tr);
    if (c2) (void)c2->wait();
    t.eq(test::read_text(log), std::string("new\n"), "truncating file output");

    SpawnOptions stdio = sh("true");
    stdio.pass_fds = {{qr1.get(), 1}};
    auto sb = Child::spawn(stdio);
    t.ok(!sb.has_value() && sb.error().detail == "cannot pass fd " + std::to_string(qr1.get()) + " as 1",
         "passing onto a standard stream is refused");

    SpawnOptions bad = sh("true");
    bad.out = Output::file(dir + "/missing/dir/log");
    auto b = Child::spawn(bad);
    t.ok(!b.has_value() && b.error().code == VIR_ERR_SYSTEM_ERROR, "unopenable output file is a system error");
}

void test_lifecycle(test::Tap &t) {
    auto c = Child::spawn(sh("exec sleep 30"));
    t.ok(c.has_value(), "spawn sleep");
    if (!c) return;
    auto w = c->wait_for(100ms);
    t.ok(w && !w->has_value(), "wait_for times out on a running child");
    auto st = c->terminate(2s);
    t.ok(st && !st->exited && st->signal == SIGTERM, "terminate ends it with SIGTERM");
    t.ok(c->reaped(), "terminated child is reaped");

    // A child that ignores SIGTERM gets SIGKILL after the grace period.
    auto stubborn = Child::spawn(sh("trap \"\" TERM; while :; do sleep 0.05; done"));
    if (stubborn) {
        auto start = std::chrono::steady_clock::now();
        // Let the shell install its trap first.
        usleep(200000);
        auto s = stubborn->terminate(300ms);
        auto took = std::chrono::steady_clock::now() - start;
        t.ok(s && s->signal == SIGKILL, "SIGTERM-ignoring child is SIGKILLed");
        t.ok(took >= 450ms && took < 5s, "SIGKILL comes after the grace period");
    }

    auto quick = Child::spawn(sh("exit 7"));
    if (quick) {
        auto s = quick->wait();
        t.ok(s && s->exited && s->code == 7, "exit code reported");
        t.eq(s ? s->describe() : "", std::string("exit status 7"), "exit status described as libvirt");
    }

    // The destructor kills and reaps what it spawned.
    pid_t pid = -1;
    {
        auto scoped = Child::spawn(sh("exec sleep 30"));
        if (scoped) pid = scoped->pid();
    }
    t.ok(pid > 0 && !pid_alive(pid), "destructor kills and reaps the child");

    // Moved-from children do not double-kill; the moved-to owner still reaps.
    auto a = Child::spawn(sh("exec sleep 30"));
    if (a) {
        Child b = std::move(*a);
        t.ok(a->pid() == -1 && b.pid() > 0, "move transfers ownership");
        auto s = b.terminate(1s);
        t.ok(s.has_value(), "moved child terminates");
    }
}

void test_daemonize(test::Tap &t) {
    std::string dir = test::temp_dir("processtest-daemon");
    SpawnOptions o = sh("echo $$ $(cut -d' ' -f6 /proc/$$/stat) > " + dir + "/sid; exec sleep 30");
    o.daemonize = true;
    auto c = Child::spawn(o);
    t.ok(c.has_value(), "spawn daemonized");
    if (!c) return;
    for (int i = 0; i < 100 && test::read_text(dir + "/sid").empty(); ++i) usleep(20000);
    std::string sid = test::read_text(dir + "/sid");
    std::string pid = std::to_string(c->pid());
    t.eq(sid, pid + " " + pid + "\n", "daemonized child leads its own session");
    pid_t p = c->detach();
    t.ok(pid_alive(p), "detached child keeps running");
    auto k = kill_pid(p, 1s);
    t.ok(k.has_value(), "kill_pid succeeds");
    // Detached from us but still our child: it is a zombie until reaped.
    int ws = 0;
    waitpid(p, &ws, 0);
    t.ok(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGTERM, "kill_pid ended it with SIGTERM");
    t.ok(kill_pid(p, 100ms).has_value(), "kill_pid on a gone pid is fine");
}

}  // namespace

int main() {
    signal(SIGPIPE, SIG_IGN);
    test::Tap t;
    test_run(t);
    test_env_cwd(t);
    test_fds_and_files(t);
    test_lifecycle(t);
    test_daemonize(t);
    return t.finish();
}
