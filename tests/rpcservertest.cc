// rpcservertest.cc - the RPC server end to end: a small in-test Driver behind
// rpc::Server on temporary sockets, driven by stock virsh, Debian's
// python3-libvirt and a raw socket client for what those cannot produce
// (unknown procedures, bad lengths, silent keepalive peers, disconnects
// mid-call, calls stuck in the driver while the priority workers serve others).
// A fake driver is the point here: the real one is the daemon's.

#include "tap.hh"

#include "rpc/packet.hh"
#include "rpc/remote_protocol.hh"
#include "rpc/replies.hh"
#include "rpc/server.hh"
#include "util/raii.hh"

#include <libvirt/libvirt.h>

#include <glib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

using namespace virtsnap;
using namespace virtsnap::rpc;
using namespace std::chrono_literals;

namespace {

// ---- The in-test driver: two domains, a slow save, events on resume ----
class FakeDriver : public Driver {
public:
    EventSink *events = nullptr;
    std::atomic<int> saves_finished{0};

    FakeDriver() {
        alpha_ = DomainRef{"alpha", *Uuid::parse("11111111-2222-3333-4444-555555555555"), 1};
        beta_ = DomainRef{"beta", *Uuid::parse("66666666-7777-8888-9999-aaaaaaaaaaaa"), -1};
    }

    Result<std::string> connect_get_type(const Client &) override { return std::string("QEMU"); }
    Result<uint64_t> connect_get_version(const Client &) override { return uint64_t(7002000); }
    Result<uint64_t> connect_get_lib_version(const Client &) override { return uint64_t(9000000); }
    Result<std::string> connect_get_hostname(const Client &) override { return std::string("virtsnap-test"); }
    Result<std::string> connect_get_uri(const Client &) override { return std::string("qemu:///system"); }
    Result<NodeInfo> node_get_info(const Client &) override {
        return NodeInfo{"x86_64", 1048576, 2, 2000, 1, 1, 2, 1};
    }
    Result<SecurityModel> node_get_security_model(const Client &) override {
        return SecurityModel{"none", "0"};
    }
    Result<std::vector<DomainRef>> connect_list_all_domains(const Client &, uint32_t) override {
        return std::vector<DomainRef>{alpha_, beta_};
    }
    Result<DomainRef> domain_lookup_by_name(const Client &, const std::string &name) override {
        if (name == "alpha") return alpha_;
        if (name == "beta") return beta_;
        return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching name '" + name + "'");
    }
    Result<DomainRef> domain_lookup_by_uuid(const Client &, const Uuid &uuid) override {
        if (uuid == alpha_.uuid) return alpha_;
        if (uuid == beta_.uuid) return beta_;
        return fail(VIR_ERR_NO_DOMAIN, VIR_FROM_QEMU, "no domain with matching uuid '" + uuid.str() + "'");
    }
    Result<DomainState> domain_get_state(const Client &, const DomainRef &d, uint32_t) override {
        return d.name == "alpha" ? DomainState{1, 1} : DomainState{5, 0};
    }
    Result<DomainInfo> domain_get_info(const Client &, const DomainRef &d) override {
        return DomainInfo{uint8_t(d.name == "alpha" ? 1 : 5), 65536, 65536, 1, 0};
    }
    Result<std::string> domain_get_os_type(const Client &, const DomainRef &) override { return std::string("hvm"); }
    Result<bool> domain_is_persistent(const Client &, const DomainRef &) override { return true; }
    Result<bool> domain_get_autostart(const Client &, const DomainRef &) override { return false; }
    Result<bool> domain_has_managed_save_image(const Client &, const DomainRef &, uint32_t) override {
        return false;
    }
    Result<SecurityLabel> domain_get_security_label(const Client &, const DomainRef &) override {
        return SecurityLabel{"", 0};
    }
    Result<std::vector<std::string>> domain_get_messages(const Client &, const DomainRef &, uint32_t) override {
        return std::vector<std::string>{};
    }
    Result<std::string> domain_get_xml_desc(const Client &, const DomainRef &d, uint32_t) override {
        return "<domain type='qemu'>\n  <name>" + d.name + "</name>\n</domain>\n";
    }
    Status domain_suspend(const Client &, const DomainRef &) override { return ok(); }
    Status domain_resume(const Client &, const DomainRef &d) override {
        if (events) events->domain_lifecycle(d, VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_UNPAUSED);
        return ok();
    }
    // A long call: the worker pool must keep everything else moving meanwhile.
    // Saving to "/gate" waits until the test opens the gate instead.
    Status domain_save(const Client &, const DomainRef &, const std::string &to, const std::optional<std::string> &,
                       uint32_t) override {
        if (to == "/gate") {
            std::unique_lock lock(gate_mu);
            gated++;
            gate_cv.notify_all();
            gate_cv.wait(lock, [&] { return gate_open; });
        } else {
            std::this_thread::sleep_for(1000ms);
        }
        saves_finished++;
        return ok();
    }
    // Waits until `n` gated saves are running.
    bool wait_gated(int n) {
        std::unique_lock lock(gate_mu);
        return gate_cv.wait_for(lock, 10s, [&] { return gated >= n; });
    }
    void open_gate() {
        std::lock_guard lock(gate_mu);
        gate_open = true;
        gate_cv.notify_all();
    }
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    int gated = 0;
    bool gate_open = false;

    DomainRef alpha_, beta_;
};

// ---- Running virsh and python ----
struct Run {
    int status = -1;
    std::string out, err;
};

Run run(const std::vector<std::string> &argv, const std::string &home) {
    std::vector<char *> args;
    for (auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    gchar **env = g_get_environ();
    env = g_environ_setenv(env, "HOME", home.c_str(), TRUE);
    env = g_environ_setenv(env, "XDG_CONFIG_HOME", home.c_str(), TRUE);
    env = g_environ_setenv(env, "XDG_CACHE_HOME", home.c_str(), TRUE);
    env = g_environ_setenv(env, "LC_ALL", "C", TRUE);
    gchar *out = nullptr, *err = nullptr;
    gint status = -1;
    Run r;
    if (g_spawn_sync(nullptr, args.data(), env, G_SPAWN_SEARCH_PATH, nullptr, nullptr, &out, &err, &status,
                     nullptr)) {
        r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.out = out ? out : "";
        r.err = err ? err : "";
    }
    g_free(out);
    g_free(err);
    g_strfreev(env);
    return r;
}

bool contains(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

// ---- A raw protocol client ----
class RawClient {
public:
    explicit RawClient(const std::string &path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        if (::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~RawClient() { close(); }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    bool valid() const { return fd_ >= 0; }

    void send_raw(const std::vector<uint8_t> &bytes) {
        if (fd_ >= 0) (void)!::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }
    template <typename T>
    void call(int32_t proc, uint32_t serial, const T &body, uint32_t prog = kRemoteProgram) {
        Header h{prog, 1, proc, MessageType::Call, serial, MessageStatus::Ok};
        xdr::Encoder e;
        begin_packet(e, h);
        (void)encode(e, body);
        (void)finish_packet(e);
        send_raw(e.bytes());
    }
    void open_connection(uint32_t &serial) {
        call(kProcConnectOpen, serial++, ConnectOpenArgs{std::string("qemu:///system"), 0});
        (void)read_packet(2000ms);
    }

    struct Packet {
        Header h;
        std::vector<uint8_t> body;
    };
    // The next packet, or nothing on timeout or EOF (eof() tells which).
    std::optional<Packet> read_packet(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (buf_.size() >= 4) {
                uint32_t len = read_length_word(std::span<const uint8_t, 4>(buf_.data(), 4));
                if (len >= kMinPacket && buf_.size() >= len) {
                    Packet p;
                    p.h = *parse_header(std::span<const uint8_t>(buf_.data() + 4, len - 4));
                    p.body.assign(buf_.begin() + 28, buf_.begin() + len);
                    buf_.erase(buf_.begin(), buf_.begin() + len);
                    return p;
                }
            }
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || fd_ < 0) return std::nullopt;
            pollfd pfd{fd_, POLLIN, 0};
            if (::poll(&pfd, 1, int(left.count())) <= 0) continue;
            uint8_t tmp[65536];
            ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n <= 0) {
                eof_ = true;
                return std::nullopt;
            }
            buf_.insert(buf_.end(), tmp, tmp + n);
        }
    }
    bool eof() const { return eof_; }

private:
    int fd_ = -1;
    bool eof_ = false;
    std::vector<uint8_t> buf_;
};

std::optional<RemoteError> error_of(const RawClient::Packet &p) {
    if (p.h.status != MessageStatus::Error) return std::nullopt;
    auto e = decode<RemoteError>(p.body);
    if (!e) return std::nullopt;
    return *e;
}

// ---- The tests ----
struct Env {
    FakeDriver driver;
    std::string dir, rw, ro, uri, ro_uri;
    Server *server = nullptr;
};

void test_virsh_basics(test::Tap &t, Env &e) {
    Run v = run({"virsh", "-c", e.uri, "version"}, e.dir);
    t.ok(v.status == 0 && contains(v.out, "Running hypervisor: QEMU 7.2.0") && contains(v.out, "Using API: QEMU 9.0.0"),
         "virsh version", v.out + v.err);
    Run h = run({"virsh", "-c", e.uri, "hostname"}, e.dir);
    t.eq(h.out, std::string("virtsnap-test\n\n"), "virsh hostname");
    // virsh uri answers from the client's own URI; python's getURI() likewise.
    Run u = run({"virsh", "-c", e.uri, "uri"}, e.dir);
    t.eq(u.out, e.uri + "\n\n", "virsh uri");
    Run l = run({"virsh", "-c", e.uri, "list", "--all"}, e.dir);
    t.ok(l.status == 0 && contains(l.out, " 1    alpha   running") && contains(l.out, " -    beta    shut off"),
         "virsh list --all", l.out + l.err);
    Run i = run({"virsh", "-c", e.uri, "dominfo", "beta"}, e.dir);
    t.ok(i.status == 0 && contains(i.out, "Name:           beta") && contains(i.out, "State:          shut off") &&
             contains(i.out, "UUID:           66666666-7777-8888-9999-aaaaaaaaaaaa") &&
             contains(i.out, "Max memory:     65536 KiB") && contains(i.out, "Security model: none") &&
             contains(i.out, "Security DOI:   0"),
         "virsh dominfo", i.out + i.err);
    Run s = run({"virsh", "-c", e.uri, "domstate", "alpha", "--reason"}, e.dir);
    t.eq(s.out, std::string("running (booted)\n\n"), "virsh domstate --reason");
    Run x = run({"virsh", "-c", e.uri, "dumpxml", "alpha"}, e.dir);
    t.eq(x.out, std::string("<domain type='qemu'>\n  <name>alpha</name>\n</domain>\n\n"), "virsh dumpxml");
    Run n = run({"virsh", "-c", e.uri, "dominfo", "nosuch"}, e.dir);
    // virsh replaces the lookup error with its own words; python below checks code and message.
    t.ok(n.status == 1 && contains(n.err, "error: failed to get domain 'nosuch'"), "virsh dominfo of an unknown domain",
         n.err);
    Run ns = run({"virsh", "-c", e.uri, "snapshot-list", "alpha"}, e.dir);
    t.ok(ns.status == 1 && contains(ns.err, "this function is not supported by the connection driver: "
                                            "virDomainSnapshotNum"),
         "driver defaults answer 'not supported' with the API name", ns.err);
}

void test_read_only(test::Tap &t, Env &e) {
    Run r = run({"virsh", "-r", "-c", e.uri, "suspend", "alpha"}, e.dir);
    t.ok(r.status == 1 && contains(r.err, "operation forbidden: read only access prevents virDomainSuspend"),
         "virsh -r refuses a state-changing call", r.err);
    Run ro = run({"virsh", "-c", e.ro_uri, "suspend", "alpha"}, e.dir);
    t.ok(ro.status == 1 && contains(ro.err, "operation forbidden: read only access prevents virDomainSuspend"),
         "the read-only socket refuses it without -r", ro.err);
    Run rl = run({"virsh", "-c", e.ro_uri, "list", "--all"}, e.dir);
    t.ok(rl.status == 0 && contains(rl.out, "alpha"), "the read-only socket serves reads", rl.err);
    Run rs = run({"virsh", "-c", e.ro_uri, "dumpxml", "--security-info", "alpha"}, e.dir);
    t.ok(rs.status == 1 && contains(rs.err, "operation forbidden: virDomainGetXMLDesc with secure flag"),
         "read-only clients do not get secure XML", rs.err);
    Run w = run({"virsh", "-c", e.uri, "suspend", "alpha"}, e.dir);
    t.ok(w.status == 0, "the read-write socket allows it", w.err);
    struct stat st {};
    t.ok(::stat(e.rw.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600, "read-write socket is mode 0600");
    t.ok(::stat(e.ro.c_str(), &st) == 0 && (st.st_mode & 0777) == 0600, "read-only socket is mode 0600 too");
}

void test_raw_protocol(test::Tap &t, Env &e) {
    RawClient c(e.rw);
    uint32_t serial = 0;
    c.call(kProcConnectListAllDomains, serial++, NeedResultsArgs{1, 0});
    auto p = c.read_packet(2000ms);
    auto err = p ? error_of(*p) : std::nullopt;
    t.ok(err && err->code == VIR_ERR_INTERNAL_ERROR && err->message == std::string("internal error: connection not open"),
         "calls before CONNECT_OPEN: 'connection not open'");

    c.call(kProcConnectSupportsFeature, serial++, SupportsFeatureArgs{14});
    p = c.read_packet(2000ms);
    auto sup = p ? decode<IntRet>(p->body) : Result<IntRet>(fail(VIR_ERR_RPC, VIR_FROM_RPC, "no reply"));
    t.ok(sup && sup->value == 1, "SUPPORTS_FEATURE answers before CONNECT_OPEN");

    c.open_connection(serial);
    c.call(9999, serial, Void{});
    p = c.read_packet(2000ms);
    err = p ? error_of(*p) : std::nullopt;
    t.ok(p && p->h.serial == serial && p->h.type == MessageType::Reply && err && err->code == VIR_ERR_RPC &&
             err->message == std::string("unknown procedure: 9999"),
         "unknown procedure gets libvirtd's error reply (VIR_ERR_RPC)");
    serial++;
    c.call(5, serial++, Void{});
    p = c.read_packet(2000ms);
    t.ok(p && error_of(*p) && error_of(*p)->code == VIR_ERR_NO_SUPPORT,
         "a libvirt procedure virtsnap does not serve: VIR_ERR_NO_SUPPORT");
    c.call(1, serial++, Void{}, 0x12345678);
    p = c.read_packet(2000ms);
    t.ok(p && error_of(*p) && error_of(*p)->code == VIR_ERR_RPC &&
             error_of(*p)->message == std::string("Cannot find program 305419896 version 1"),
         "unknown program gets an error reply (VIR_ERR_RPC)");

    // A truncated argument: LOOKUP_BY_NAME whose string runs past the packet.
    Header h{kRemoteProgram, 1, kProcDomainLookupByName, MessageType::Call, serial++, MessageStatus::Ok};
    xdr::Encoder enc;
    begin_packet(enc, h);
    enc.put_uint(100);
    enc.put_uint(0x61616161);
    (void)finish_packet(enc);
    c.send_raw(enc.bytes());
    p = c.read_packet(2000ms);
    err = p ? error_of(*p) : std::nullopt;
    t.ok(err && err->code == VIR_ERR_RPC && err->message == std::string("Unable to decode message payload"),
         "malformed payload gets an error reply");

    c.call(kProcDomainLookupByName, serial++, LookupByNameArgs{"alpha"});
    p = c.read_packet(2000ms);
    auto dom = p ? decode<DomRet>(p->body) : Result<DomRet>(fail(VIR_ERR_RPC, VIR_FROM_RPC, "no reply"));
    t.ok(dom && dom->dom.name == "alpha" && dom->dom.id == 1, "connection still serves after the errors");

    // A bad length closes that connection only.
    RawClient bad(e.rw);
    RawClient good(e.rw);
    bad.send_raw({0, 0, 0, 8, 1, 2, 3, 4});
    (void)bad.read_packet(2000ms);
    t.ok(bad.eof(), "a length word below 28 closes that connection");
    RawClient huge(e.rw);
    huge.send_raw({0x7f, 0, 0, 0});
    (void)huge.read_packet(2000ms);
    t.ok(huge.eof(), "a length word over 32 MiB closes that connection");
    good.call(kProcAuthList, 0, Void{});
    p = good.read_packet(2000ms);
    t.ok(p && p->h.status == MessageStatus::Ok && !good.eof(), "other connections are unaffected");
}

void test_concurrency(test::Tap &t, Env &e) {
    // Two calls in flight on one connection: the quick one is answered first.
    RawClient c(e.rw);
    uint32_t serial = 0;
    c.open_connection(serial);
    auto start = std::chrono::steady_clock::now();
    c.call(kProcDomainSave, 100, DomainSaveArgs{e.driver.alpha_, "/nonexistent/save"});
    c.call(kProcDomainGetState, 101, DomFlagsArgs{e.driver.alpha_, 0});
    auto first = c.read_packet(3000ms);
    auto quick = std::chrono::steady_clock::now() - start;
    auto second = c.read_packet(3000ms);
    t.ok(first && first->h.serial == 101 && quick < 800ms, "a quick call overtakes a slow one (matched by serial)");
    t.ok(second && second->h.serial == 100 && second->h.status == MessageStatus::Ok, "the slow call completes later");

    // A long call on one client does not block another client.
    RawClient slow(e.rw);
    uint32_t s2 = 0;
    slow.open_connection(s2);
    slow.call(kProcDomainSave, s2++, DomainSaveArgs{e.driver.alpha_, "/nonexistent/save"});
    start = std::chrono::steady_clock::now();
    Run v = run({"virsh", "-c", e.uri, "domstate", "beta"}, e.dir);
    auto took = std::chrono::steady_clock::now() - start;
    t.ok(v.status == 0 && v.out == "shut off\n\n" && took < 900ms, "another client is served during a long call");
    (void)slow.read_packet(3000ms);

    // 16 virsh clients at once.
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int i = 0; i < 16; i++)
        threads.emplace_back([&] {
            Run r = run({"virsh", "-c", e.uri, "list", "--all"}, e.dir);
            if (r.status == 0 && contains(r.out, "alpha") && contains(r.out, "beta")) good++;
        });
    for (auto &th : threads) th.join();
    t.eq(good.load(), 16, "16 virsh clients in parallel all succeed");

    // A client that disconnects mid-call harms nobody.
    int before = e.driver.saves_finished.load();
    {
        RawClient quitter(e.rw);
        uint32_t s3 = 0;
        quitter.open_connection(s3);
        quitter.call(kProcDomainSave, s3++, DomainSaveArgs{e.driver.alpha_, "/nonexistent/save"});
        std::this_thread::sleep_for(100ms);
    }
    std::this_thread::sleep_for(1300ms);
    Run after = run({"virsh", "-c", e.uri, "domstate", "alpha"}, e.dir);
    t.ok(e.driver.saves_finished.load() == before + 1 && after.status == 0 && after.out == "running\n\n",
         "a client gone mid-call: the worker finishes, the server carries on");
}

void test_keepalive(test::Tap &t, Env &e) {
    RawClient c(e.rw);
    c.call(kProcConnectSupportsFeature, 0, SupportsFeatureArgs{10});
    auto reply = c.read_packet(1000ms);
    t.ok(reply && reply->h.status == MessageStatus::Ok, "keepalive feature acknowledged");
    auto ping = c.read_packet(1500ms);
    t.ok(ping && ping->h.prog == kKeepaliveProgram && ping->h.proc == kKeepalivePing &&
             ping->h.type == MessageType::Message && ping->h.serial == 0,
         "an idle client receives PING");
    // Answer nothing: the server gives up after the configured number of pings.
    for (int i = 0; i < 10 && !c.eof(); i++) (void)c.read_packet(500ms);
    t.ok(c.eof(), "an unanswering client is dropped");

    RawClient ans(e.rw);
    ans.call(kProcConnectSupportsFeature, 0, SupportsFeatureArgs{10});
    (void)ans.read_packet(1000ms);
    int pings = 0;
    for (int i = 0; i < 8; i++) {
        auto p = ans.read_packet(400ms);
        if (p && p->h.prog == kKeepaliveProgram && p->h.proc == kKeepalivePing) {
            pings++;
            Header h{kKeepaliveProgram, 1, kKeepalivePong, MessageType::Message, 0, MessageStatus::Ok};
            xdr::Encoder enc;
            begin_packet(enc, h);
            (void)finish_packet(enc);
            ans.send_raw(enc.bytes());
        }
    }
    t.ok(!ans.eof() && pings >= 2, "a client answering PONG stays connected");
    RawClient pinger(e.rw);
    Header h{kKeepaliveProgram, 1, kKeepalivePing, MessageType::Message, 0, MessageStatus::Ok};
    xdr::Encoder enc;
    begin_packet(enc, h);
    (void)finish_packet(enc);
    pinger.send_raw(enc.bytes());
    auto pong = pinger.read_packet(1000ms);
    t.ok(pong && pong->h.prog == kKeepaliveProgram && pong->h.proc == kKeepalivePong, "PING is answered with PONG");
}

// A keepalive client that never answers: what happens to it within `window`.
struct SilentPeer {
    int pings = 0;
    bool dropped = false;
};
SilentPeer watch_silent_peer(const std::string &path, std::chrono::milliseconds window) {
    RawClient c(path);
    c.call(kProcConnectSupportsFeature, 0, SupportsFeatureArgs{10});
    (void)c.read_packet(1000ms);
    SilentPeer r;
    auto end = std::chrono::steady_clock::now() + window;
    while (!c.eof() && std::chrono::steady_clock::now() < end) {
        auto p = c.read_packet(100ms);
        if (p && p->h.prog == kKeepaliveProgram && p->h.proc == kKeepalivePing) r.pings++;
    }
    r.dropped = c.eof();
    return r;
}

void test_keepalive_config(test::Tap &t, Env &e) {
    // keepalive_interval -1 in libvirtd.conf: never ping, never drop an idle client.
    ServerOptions off;
    off.rw_socket_path = e.dir + "/ka-off-sock";
    off.limits.keepalive_interval = 0ms;
    off.limits.keepalive_count = 0;
    Server s1(e.driver, off);
    t.ok(bool(s1.start()), "server with keepalive disabled starts");
    SilentPeer a = watch_silent_peer(off.rw_socket_path, 1500ms);
    t.ok(a.pings == 0 && !a.dropped, "keepalive disabled: an idle client is neither pinged nor dropped",
         "pings " + std::to_string(a.pings) + (a.dropped ? ", dropped" : ""));
    RawClient pinger(off.rw_socket_path);
    Header h{kKeepaliveProgram, 1, kKeepalivePing, MessageType::Message, 0, MessageStatus::Ok};
    xdr::Encoder enc;
    begin_packet(enc, h);
    (void)finish_packet(enc);
    pinger.send_raw(enc.bytes());
    auto pong = pinger.read_packet(1000ms);
    t.ok(pong && pong->h.proc == kKeepalivePong, "keepalive disabled: a client's PING is still answered");
    s1.stop();

    // keepalive_count 0: dropped after one silent interval, without a ping.
    ServerOptions zero;
    zero.rw_socket_path = e.dir + "/ka-zero-sock";
    zero.limits.keepalive_interval = 300ms;
    zero.limits.keepalive_count = 0;
    Server s2(e.driver, zero);
    t.ok(bool(s2.start()), "server with keepalive_count 0 starts");
    SilentPeer b = watch_silent_peer(zero.rw_socket_path, 3000ms);
    t.ok(b.pings == 0 && b.dropped, "keepalive_count 0: an idle client is dropped without being pinged",
         "pings " + std::to_string(b.pings) + (b.dropped ? ", dropped" : ""));
    s2.stop();
}

void test_priority_workers(test::Tap &t, Env &e) {
    // The pool alone: one ordinary worker stuck, one priority worker.
    {
        WorkerPool pool(1, 1);
        std::mutex mu;
        std::condition_variable cv;
        bool release = false, high_ran = false, low_ran = false;
        pool.post([&] {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return release; });
        });
        pool.post([&] {
            std::lock_guard lock(mu);
            low_ran = true;
            cv.notify_all();
        });
        pool.post(
            [&] {
                std::lock_guard lock(mu);
                high_ran = true;
                cv.notify_all();
            },
            true);
        std::unique_lock lock(mu);
        bool high = cv.wait_for(lock, 10s, [&] { return high_ran; });
        bool low_before = low_ran;
        release = true;
        cv.notify_all();
        bool low = cv.wait_for(lock, 10s, [&] { return low_ran; });
        t.ok(high && !low_before && low,
             "a high-priority job runs on the priority worker while the ordinary one is stuck; low waits");
    }

    // 8 saves stuck in the driver take all 4 ordinary workers (and queue 4 more);
    // domstate's lookup and GET_STATE are high priority and still answer.
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int c = 0; c < 2; c++) {
        auto cl = std::make_unique<RawClient>(e.rw);
        uint32_t serial = 0;
        cl->open_connection(serial);
        for (int i = 0; i < 4; i++) cl->call(kProcDomainSave, serial++, DomainSaveArgs{e.driver.alpha_, "/gate"});
        clients.push_back(std::move(cl));
    }
    bool stuck = e.driver.wait_gated(4);
    int finished_before = e.driver.saves_finished.load();
    Run v = run({"timeout", "60", "virsh", "-c", e.uri, "domstate", "alpha"}, e.dir);
    int finished_after = e.driver.saves_finished.load();
    e.driver.open_gate();
    t.ok(stuck && v.status == 0 && v.out == "running\n\n" && finished_after == finished_before,
         "8 long calls hold every ordinary worker; domstate is answered by the priority workers", v.out + v.err);
    int replies = 0;
    for (auto &cl : clients)
        for (int i = 0; i < 4; i++)
            if (auto p = cl->read_packet(10000ms); p && p->h.status == MessageStatus::Ok) replies++;
    t.eq(replies, 8, "the stuck calls complete once released");
}

void test_socket_group_and_adoption(test::Tap &t, Env &e) {
    // unix_sock_group: both sockets get the group, before listen().
    gid_t other = getegid();
    if (geteuid() == 0) {
        struct group *g = getgrnam("nogroup");
        other = g ? g->gr_gid : gid_t(65534);
    } else {
        gid_t groups[64];
        int n = getgroups(64, groups);
        for (int i = 0; i < n; i++)
            if (groups[i] != getegid()) other = groups[i];
    }
    if (other == getegid()) {
        t.skip("unix_sock_group chown", "no second group to give the sockets to");
    } else {
        ServerOptions g;
        g.rw_socket_path = e.dir + "/grp-sock";
        g.ro_socket_path = e.dir + "/grp-sock-ro";
        g.rw_mode = 0660;
        g.group = other;
        Server sg(e.driver, g);
        auto st = sg.start();
        struct stat a {}, b {};
        t.ok(st && ::stat(g.rw_socket_path.c_str(), &a) == 0 && ::stat(g.ro_socket_path.c_str(), &b) == 0 &&
                 a.st_gid == other && b.st_gid == other && (a.st_mode & 0777) == 0660 && (b.st_mode & 0777) == 0600,
             "group option: both sockets owned by the group, modes as configured");
        sg.stop();
    }

    // A socket passed in (systemd socket activation) is served and left in place.
    std::string path = e.dir + "/passed-sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    bool made = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 && ::listen(fd, 8) == 0;
    ServerOptions p;
    p.rw_socket_path = path;
    p.rw_listen_fd = fd;
    Server sp(e.driver, p);
    auto st = sp.start();
    Run v = run({"virsh", "-c", "qemu+unix:///system?socket=" + path, "domstate", "beta"}, e.dir);
    t.ok(made && st && v.status == 0 && v.out == "shut off\n\n", "a passed-in listening socket is served", v.err);
    sp.stop();
    t.ok(g_file_test(path.c_str(), G_FILE_TEST_EXISTS), "stop leaves a passed-in socket to its owner");
}

void test_python(test::Tap &t, Env &e) {
    if (!g_file_test("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE)) {
        t.skip("python-libvirt", "/usr/bin/python3 missing");
        return;
    }
    std::string plain = e.dir + "/plain.py";
    std::ofstream(plain) << "import sys, libvirt\n"
                            "c = libvirt.open('qemu+unix:///system?socket=' + sys.argv[1])\n"
                            "print(c.getHostname())\n"
                            "print(c.lookupByName('beta').info())\n"
                            "print(sorted(d.name() for d in c.listAllDomains()))\n"
                            "try:\n"
                            "    c.lookupByName('nosuch')\n"
                            "except libvirt.libvirtError as e:\n"
                            "    print('ERR', e.get_error_code(), e.get_error_domain(), e.get_error_message())\n"
                            "c.close()\n";
    Run p = run({"/usr/bin/python3", plain, e.rw}, e.dir);
    t.eq_text(p.out,
              "virtsnap-test\n[5, 65536, 65536, 1, 0]\n['alpha', 'beta']\n"
              "ERR 42 10 Domain not found: no domain with matching name 'nosuch'\n",
              "python-libvirt: open, hostname, info, listAllDomains, error codes");

    std::string events = e.dir + "/events.py";
    std::ofstream(events) << "import sys, threading, libvirt\n"
                             "libvirt.virEventRegisterDefaultImpl()\n"
                             "c = libvirt.open('qemu+unix:///system?socket=' + sys.argv[1])\n"
                             "got = []\n"
                             "done = threading.Event()\n"
                             "def cb(conn, dom, event, detail, opaque):\n"
                             "    got.append('%s %d %d' % (dom.name(), event, detail))\n"
                             "    done.set()\n"
                             "cid = c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, cb, None)\n"
                             "def loop():\n"
                             "    while True:\n"
                             "        libvirt.virEventRunDefaultImpl()\n"
                             "threading.Thread(target=loop, daemon=True).start()\n"
                             "c.lookupByName('alpha').resume()\n"
                             "done.wait(5)\n"
                             "c.domainEventDeregisterAny(cid)\n"
                             "print('EVENT', got[0] if got else 'none')\n";
    Run ev = run({"/usr/bin/python3", events, e.rw}, e.dir);
    t.eq_text(ev.out, "EVENT alpha 4 0\n", "python receives a lifecycle event (RESUMED/UNPAUSED)");
}

void test_virsh_event(test::Tap &t, Env &e) {
    // virsh event --all registers all 27 event ids; each must succeed.
    std::thread emitter([&] {
        std::this_thread::sleep_for(700ms);
        e.server->events().domain_lifecycle(e.driver.beta_, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        e.server->events().domain_block_job(e.driver.alpha_, "/img/a.qcow2", "vda", 2, 3);
    });
    Run r = run({"virsh", "-c", e.uri, "event", "--all", "--loop", "--timeout", "2"}, e.dir);
    emitter.join();
    t.ok(contains(r.out, "event 'lifecycle' for domain 'beta': Started Booted") &&
             contains(r.out, "event 'block-job' for domain 'alpha': Block Copy for /img/a.qcow2 ready") &&
             contains(r.out, "event 'block-job-2' for domain 'alpha': Block Copy for vda ready") &&
             !contains(r.err, "error"),
         "virsh event --all --loop: registration for every id, lifecycle and block-job delivery", r.out + r.err);
}

}  // namespace

int main() {
    test::Tap t;
    if (!GCharPtr(g_find_program_in_path("virsh"))) {
        t.skip("rpc server", "virsh not installed");
        return t.finish();
    }
    Env e;
    e.dir = test::temp_dir("rpcserver");
    e.rw = e.dir + "/virtsnapd-sock";
    e.ro = e.dir + "/virtsnapd-sock-ro";
    e.uri = "qemu+unix:///system?socket=" + e.rw;
    e.ro_uri = "qemu+unix:///system?socket=" + e.ro;

    ServerOptions opts;
    opts.rw_socket_path = e.rw;
    opts.ro_socket_path = e.ro;
    opts.workers = 4;
    opts.limits.keepalive_interval = 300ms;
    opts.limits.keepalive_count = 2;
    Server server(e.driver, opts);
    e.server = &server;
    e.driver.events = &server.events();
    auto started = server.start();
    t.ok(bool(started), "server starts", started ? "" : started.error().message());
    if (!started) return t.finish();

    Server second(e.driver, opts);
    t.ok(!second.start(), "a second server refuses a socket that is in use");

    test_virsh_basics(t, e);
    test_read_only(t, e);
    test_raw_protocol(t, e);
    test_concurrency(t, e);
    test_keepalive(t, e);
    test_keepalive_config(t, e);
    test_priority_workers(t, e);
    test_socket_group_and_adoption(t, e);
    test_python(t, e);
    test_virsh_event(t, e);

    server.stop();
    t.ok(!g_file_test(e.rw.c_str(), G_FILE_TEST_EXISTS), "stop removes the socket files");
    return t.finish();
}
